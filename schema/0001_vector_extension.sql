-- pgvector: the vector, halfvec and sparsevec types and their index access methods.
CREATE EXTENSION IF NOT EXISTS vector;
