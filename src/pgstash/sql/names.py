"""One constant per named query of `queries/`: `names.configurations_newest` is that query (a
`Query`: its named `$n` text, parameters, result kind and route, the whole plan of a call), so
grepping a query's name finds its callers, and a name no file declares fails the import, not the
call. `postgres.run(names.memory_recall, ...)` runs one; `postgres.run("memory_recall", ...)` is
the same call by string (kept for code written before these constants).

tests/test_names.py checks that every query of `queries/` is used by some code, and that the code
uses no name `queries/` does not declare.
"""

from __future__ import annotations

from pgstash.sql.catalogue import query

# queries/configurations.sql
configurations_newest = query("configurations_newest")
configurations_identifiers = query("configurations_identifiers")
configurations_history = query("configurations_history")
configurations_lock = query("configurations_lock")
configurations_insert = query("configurations_insert")
configurations_remove = query("configurations_remove")
configurations_prune = query("configurations_prune")

# queries/instructions.sql
instructions_newest = query("instructions_newest")
instructions_declarations = query("instructions_declarations")
instructions_history = query("instructions_history")
instructions_lock = query("instructions_lock")
instructions_insert = query("instructions_insert")
instructions_remove = query("instructions_remove")
instructions_prune = query("instructions_prune")

# queries/instructions_labels.sql
instructions_labels_installed = query("instructions_labels_installed")
instructions_latest = query("instructions_latest")
instructions_labelled = query("instructions_labelled")
instructions_numbered = query("instructions_numbered")
instructions_history_numbered = query("instructions_history_numbered")
instructions_number = query("instructions_number")
instructions_label_current = query("instructions_label_current")
instructions_revision_exists = query("instructions_revision_exists")
instructions_label_move = query("instructions_label_move")
instructions_label_last_move = query("instructions_label_last_move")
instructions_label_history = query("instructions_label_history")
instructions_latest_history = query("instructions_latest_history")
instructions_labels_of = query("instructions_labels_of")
instructions_labelled_declarations = query("instructions_labelled_declarations")
instructions_remove_labelled = query("instructions_remove_labelled")
instructions_prune_labelled = query("instructions_prune_labelled")

# queries/memory.sql
memory_remember = query("memory_remember")
memory_recall = query("memory_recall")
memory_forget = query("memory_forget")
memory_forget_idle = query("memory_forget_idle")

# queries/vectors.sql
vectors_table_facts = query("vectors_table_facts")
vectors_table_lock = query("vectors_table_lock")
vectors_table_rows = query("vectors_table_rows")
vectors_ddl_settings = query("vectors_ddl_settings")
vectors_ddl_reset = query("vectors_ddl_reset")
vectors_scan_settings = query("vectors_scan_settings")
vectors_copy = query("vectors_copy")
vectors_search = query("vectors_search")
vectors_search_exact = query("vectors_search_exact")
vectors_search_relaxed = query("vectors_search_relaxed")
vectors_newest = query("vectors_newest")
vectors_delete = query("vectors_delete")
vectors_reindex_concurrently = query("vectors_reindex_concurrently")
vectors_vacuum = query("vectors_vacuum")

# queries/vectors_build.sql
vectors_ann_indexes = query("vectors_ann_indexes")
vectors_build_limits = query("vectors_build_limits")
vectors_build_settings = query("vectors_build_settings")
vectors_build_hnsw = query("vectors_build_hnsw")
vectors_build_ivfflat = query("vectors_build_ivfflat")
vectors_build_hnsw_concurrently = query("vectors_build_hnsw_concurrently")
vectors_build_ivfflat_concurrently = query("vectors_build_ivfflat_concurrently")
vectors_rename_index = query("vectors_rename_index")
vectors_build_progress = query("vectors_build_progress")
vectors_bulk_lock = query("vectors_bulk_lock")
vectors_lock_wait = query("vectors_lock_wait")
vectors_drop_index = query("vectors_drop_index")
vectors_comment_dropped = query("vectors_comment_dropped")
vectors_drop_index_concurrently = query("vectors_drop_index_concurrently")
vectors_comment_clear = query("vectors_comment_clear")
vectors_bulk_lock_nowait = query("vectors_bulk_lock_nowait")

# queries/vectors_text.sql
vectors_text_search = query("vectors_text_search")
vectors_text_timeout = query("vectors_text_timeout")
vectors_hybrid = query("vectors_hybrid")
vectors_text_languages = query("vectors_text_languages")
vectors_keys_lock = query("vectors_keys_lock")
vectors_delete_ids = query("vectors_delete_ids")
vectors_copy_keyed = query("vectors_copy_keyed")

# queries/fragments/filters.sql and gates.sql
filter_everything = query("filter_everything")
filter_equal = query("filter_equal")
filter_not_equal = query("filter_not_equal")
filter_greater = query("filter_greater")
filter_greater_or_equal = query("filter_greater_or_equal")
filter_less = query("filter_less")
filter_less_or_equal = query("filter_less_or_equal")
filter_contained_in = query("filter_contained_in")
filter_contains = query("filter_contains")
filter_contains_any = query("filter_contains_any")
filter_text_match = query("filter_text_match")
filter_exists = query("filter_exists")
filter_and = query("filter_and")
filter_or = query("filter_or")
filter_not = query("filter_not")
vectors_scan_gate = query("vectors_scan_gate")
vectors_bound_gate = query("vectors_bound_gate")
vectors_plans_gate = query("vectors_plans_gate")

# queries/connection.sql
vector_types = query("vector_types")
server_facts = query("server_facts")
connection_shadowing_temp_tables = query("connection_shadowing_temp_tables")

# queries/replicas.sql
replica_commit_lsn = query("replica_commit_lsn")
replica_state = query("replica_state")
replica_replayed = query("replica_replayed")

# queries/notifications.sql
notifications_ping = query("notifications_ping")

# queries/migrations.sql
migrations_create_table = query("migrations_create_table")
migrations_lock = query("migrations_lock")
migrations_applied = query("migrations_applied")
migrations_record = query("migrations_record")
migrations_tracking_exists = query("migrations_tracking_exists")
extension_available = query("extension_available")

# queries/status.sql
status_connection = query("status_connection")
status_extension = query("status_extension")
status_tables = query("status_tables")
status_relation = query("status_relation")
status_count = query("status_count")

# queries/configurations.sql
configurations_named = query("configurations_named")
configurations_insert_unnamed = query("configurations_insert_unnamed")
configurations_of_kind = query("configurations_of_kind")

# queries/fragments/filters.sql
filter_text_words = query("filter_text_words")
filter_column_equal = query("filter_column_equal")
filter_column_not_equal = query("filter_column_not_equal")
filter_column_greater = query("filter_column_greater")
filter_column_greater_or_equal = query("filter_column_greater_or_equal")
filter_column_less = query("filter_column_less")
filter_column_less_or_equal = query("filter_column_less_or_equal")

# queries/vectors_binary.sql
vectors_search_binary = query("vectors_search_binary")

# queries/vectors_cli.sql
vectors_rows_by_id = query("vectors_rows_by_id")
vectors_ids_by_payload = query("vectors_ids_by_payload")
vectors_ingest_meta = query("vectors_ingest_meta")
vectors_drop = query("vectors_drop")

# queries/vectors_reads.sql
vectors_get_ids = query("vectors_get_ids")
vectors_page = query("vectors_page")

# queries/vectors_text.sql
vectors_delete_documents = query("vectors_delete_documents")
vectors_copy_documents = query("vectors_copy_documents")
