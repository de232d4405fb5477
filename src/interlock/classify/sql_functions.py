"""What SQL functions do: the catalogue the SQL classifier judges function calls by.

A function call is as dangerous as its body, and a statement that calls a function nobody here
knows (`SELECT purge_invoices()`) can delete anything: such a call is `unknown`. Built-ins are
judged by name: those that change the server's state (`pg_terminate_backend`, `nextval`), those
whose effect is in a string we do not parse or in a server file (`dblink_exec`, `pg_read_file`),
and the long list of PURE built-ins of PostgreSQL, MySQL/MariaDB and SQLite that only compute a
value. sqlglot parses many built-ins into typed nodes (`exp.Count`, `exp.Lower` …); those are pure
unless listed in `RISKY_TYPED`, so `PURE_FUNCTIONS` only needs the names sqlglot leaves
`Anonymous`, but it lists the common ones anyway so the catalogue reads on its own.

A target may declare its own read-only functions (`targets.X.read_only_functions` in the policy).
"""

from __future__ import annotations

from sqlglot import exp

#: Functions whose call changes the server's state, by how bad it is.
DESTRUCTIVE_FUNCTIONS = frozenset(
    {"pg_terminate_backend", "pg_cancel_backend", "lo_unlink", "pg_drop_replication_slot", "pg_promote"}
)
WRITE_FUNCTIONS = frozenset(
    {
        "nextval",
        "setval",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_xact_lock",
        "lo_create",
        "lo_creat",
        "lo_from_bytea",
        "lo_put",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_replication_origin_create",
        "pg_notify",
        "pg_stat_reset",
        "pg_stat_reset_shared",
        "pg_stat_reset_single_table_counters",
        "pg_stat_statements_reset",
        "pg_logical_emit_message",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_wal_replay_pause",
        "pg_wal_replay_resume",
        "pg_import_system_collations",
        "get_lock",
        "release_lock",
        "release_all_locks",
        "next_value_for",
    }
)
#: Functions that run SQL given as text, or read/write server files: their effect is not in the tree.
OPAQUE_FUNCTIONS = frozenset(
    {
        "dblink_exec",
        "dblink",
        "dblink_send_query",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "table_to_xml",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "lo_import",
        "lo_export",
        "pg_file_write",
        "pg_file_unlink",
        "pg_file_rename",
        "xpath_table",
        "sys_exec",
        "sys_eval",
        "load_extension",
        "load_file",
        "readfile",
        "writefile",
        "edit",
        "read_csv",
        "read_csv_auto",
        "read_parquet",
        "read_json",
        "read_json_auto",
        "read_text",
        "read_blob",
    }
)
#: Typed sqlglot nodes that are not pure computations.
RISKY_TYPED: dict[type[exp.Expr], str] = {
    exp.NextValueFor: "write",
    exp.ReadCSV: "opaque",
    exp.ReadParquet: "opaque",
    exp.ToFile: "opaque",
    exp.Secret: "opaque",
}
#: Schemas whose functions are the built-ins (a call qualified with another schema is a user's).
BUILTIN_SCHEMAS = frozenset({"", "pg_catalog", "information_schema", "sys", "main", "temp"})

_POSTGRES = """
abs acos acosd acosh age any_value array_agg array_append array_cat array_dims array_fill array_length
array_lower array_ndims array_position array_positions array_prepend array_remove array_replace array_sample
array_shuffle array_to_json array_to_string array_upper ascii asin asind asinh atan atan2 atan2d atand atanh
avg bit_and bit_count bit_length bit_or bit_xor bool_and bool_or btrim cardinality cbrt ceil ceiling
char_length character_length chr clock_timestamp coalesce col_description concat concat_ws convert
convert_from convert_to corr cos cosd cosh cot cotd count covar_pop covar_samp cume_dist current_catalog
current_database current_date current_query current_role current_schema current_schemas current_setting
current_time current_timestamp current_user currval date_add date_bin date_part date_subtract date_trunc
decode degrees dense_rank div encode enum_first enum_last enum_range every exp extract factorial first_value
floor format format_type gcd gen_random_uuid generate_series generate_subscripts get_bit get_byte greatest
has_any_column_privilege has_column_privilege has_database_privilege has_foreign_data_wrapper_privilege
has_function_privilege has_language_privilege has_schema_privilege has_sequence_privilege
has_server_privilege has_table_privilege has_tablespace_privilege has_type_privilege host hostmask
inet_client_addr inet_client_port inet_server_addr inet_server_port initcap isfinite json_agg
json_array_elements json_array_elements_text json_array_length json_build_array json_build_object json_each
json_each_text json_extract_path json_extract_path_text json_object json_object_agg json_object_keys
json_populate_record json_populate_recordset json_strip_nulls json_to_record json_to_recordset json_typeof
jsonb_agg jsonb_array_elements jsonb_array_elements_text jsonb_array_length jsonb_build_array
jsonb_build_object jsonb_each jsonb_each_text jsonb_extract_path jsonb_extract_path_text jsonb_insert
jsonb_object jsonb_object_agg jsonb_object_keys jsonb_path_exists jsonb_path_match jsonb_path_query
jsonb_path_query_array jsonb_path_query_first jsonb_populate_record jsonb_populate_recordset jsonb_pretty
jsonb_set jsonb_set_lax jsonb_strip_nulls jsonb_to_record jsonb_to_recordset jsonb_typeof justify_days
justify_hours justify_interval lag last_value lastval lcm lead least left length lower lpad ltrim
make_date make_interval make_time make_timestamp make_timestamptz masklen max md5 min min_scale mod mode
netmask network now nth_value ntile nullif num_nonnulls num_nulls obj_description octet_length overlay
percent_rank percentile_cont percentile_disc pg_backend_pid pg_blocking_pids pg_client_encoding
pg_collation_is_visible pg_column_size pg_conf_load_time pg_current_wal_insert_lsn pg_current_wal_lsn
pg_current_xact_id pg_database_size pg_describe_object pg_encoding_to_char pg_function_is_visible
pg_get_constraintdef pg_get_expr pg_get_function_arguments pg_get_function_identity_arguments
pg_get_function_result pg_get_functiondef pg_get_indexdef pg_get_keywords pg_get_ruledef
pg_get_serial_sequence pg_get_statisticsobjdef pg_get_triggerdef pg_get_userbyid pg_get_viewdef
pg_has_role pg_index_column_has_property pg_index_has_property pg_indexam_has_property pg_indexes_size
pg_input_is_valid pg_is_in_recovery pg_is_other_temp_schema pg_is_wal_replay_paused pg_jit_available
pg_last_wal_receive_lsn pg_last_wal_replay_lsn pg_last_xact_replay_timestamp pg_listening_channels
pg_my_temp_schema pg_opclass_is_visible pg_operator_is_visible pg_postmaster_start_time pg_relation_filenode
pg_relation_filepath pg_relation_size pg_size_bytes pg_size_pretty pg_sleep pg_sleep_for pg_sleep_until
pg_stat_get_activity pg_table_is_visible pg_table_size pg_tablespace_size pg_tablespace_location
pg_total_relation_size pg_trigger_depth pg_type_is_visible pg_typeof pg_wal_lsn_diff pg_walfile_name
pi position power quote_ident quote_literal quote_nullable radians random random_normal range_agg
range_merge rank regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
regexp_split_to_array regexp_split_to_table regexp_substr regr_avgx regr_avgy regr_count regr_intercept
regr_r2 regr_slope regr_sxx regr_sxy regr_syy repeat replace reverse right round row_number row_to_json
rpad rtrim scale session_user set_bit set_byte setseed sha224 sha256 sha384 sha512 sign sin sind sinh
split_part sqrt starts_with statement_timestamp stddev stddev_pop stddev_samp string_agg string_to_array
string_to_table strpos substr substring sum tan tand tanh timeofday to_ascii to_char to_date to_hex
to_json to_jsonb to_number to_regclass to_regproc to_regprocedure to_regrole to_regtype to_timestamp
transaction_timestamp translate trim trim_array trim_scale trunc txid_current txid_current_if_assigned
txid_current_snapshot txid_snapshot_xmax txid_snapshot_xmin txid_status txid_visible_in_snapshot
unistr unnest upper uuid_generate_v1 uuid_generate_v4 uuidv4 uuidv7 var_pop var_samp variance version
width_bucket xmlagg xmlconcat xmlelement xmlforest xmlparse xmlserialize xpath xpath_exists
array_contains json_scalar json_serialize jsonb_path_exists_tz pg_current_snapshot pg_snapshot_xmax
pg_snapshot_xmin pg_visible_in_snapshot pg_xact_status user localtime localtimestamp
"""
_MYSQL = """
adddate addtime aes_decrypt aes_encrypt any_value bin bin_to_uuid bit_count ceil char charset coercibility
collation compress connection_id conv convert_tz crc32 curdate current_role curtime database date
date_add date_format date_sub datediff day dayname dayofmonth dayofweek dayofyear elt export_set field
find_in_set format format_bytes format_pico_time found_rows from_base64 from_days from_unixtime
get_format group_concat hex hour icu_version if ifnull inet6_aton inet6_ntoa inet_aton inet_ntoa insert
instr is_free_lock is_ipv4 is_ipv6 is_used_lock is_uuid json_array json_array_append json_array_insert
json_arrayagg json_contains json_contains_path json_depth json_extract json_insert json_keys json_length
json_merge_patch json_merge_preserve json_object json_objectagg json_overlaps json_pretty json_quote
json_remove json_replace json_search json_set json_storage_size json_table json_type json_unquote
json_valid json_value last_day last_insert_id lcase locate log10 log2 ltrim make_set makedate maketime
microsecond mid minute month monthname name_const now oct ord period_add period_diff quarter
regexp_instr regexp_like regexp_replace regexp_substr roles_graphml row_count rtrim schema sec_to_time
second session_user sha sha1 sha2 sleep soundex space std stddev str_to_date strcmp subdate substring_index
subtime sysdate system_user time time_format time_to_sec timediff timestamp timestampadd timestampdiff
to_base64 to_days to_seconds truncate ucase uncompress uncompressed_length unhex unix_timestamp
utc_date utc_time utc_timestamp uuid uuid_short uuid_to_bin validate_password_strength week weekday
weekofyear weight_string year yearweek benchmark ps_current_thread_id ps_thread_id
"""
_SQLITE = """
changes char coalesce concat concat_ws date datetime format glob group_concat hex ifnull iif instr
json json_array json_array_length json_each json_error_position json_extract json_group_array
json_group_object json_insert json_object json_patch json_quote json_remove json_replace json_set json_tree
json_type json_valid jsonb julianday last_insert_rowid length like likelihood likely lower ltrim max min
nullif octet_length printf quote random randomblob replace round rtrim sign soundex sqlite_compileoption_get
sqlite_compileoption_used sqlite_offset sqlite_source_id sqlite_version strftime substr substring
timediff total total_changes trim typeof unhex unicode unixepoch unlikely upper zeroblob
"""
#: Built-ins that only compute a value from their arguments and the session (be generous here:
#: every name missing makes a harmless SELECT `unknown`).
PURE_FUNCTIONS = frozenset((_POSTGRES + _MYSQL + _SQLITE).split())


def risk_of(name: str) -> str | None:
    """`destructive`, `write` or `opaque` for a built-in with an effect, `pure`, or None (unknown)."""
    if name in DESTRUCTIVE_FUNCTIONS:
        return "destructive"
    if name in OPAQUE_FUNCTIONS:
        return "opaque"
    if name in WRITE_FUNCTIONS:
        return "write"
    if name in PURE_FUNCTIONS:
        return "pure"
    return None
