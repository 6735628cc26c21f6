"""The seam between Python and SQL: the catalogue of `queries/`, statements, templates and composition."""
