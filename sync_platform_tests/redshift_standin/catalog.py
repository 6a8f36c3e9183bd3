"""What the stand-in keeps inside each target database, in the schema ``redshift_standin``.

- Redshift functions PostgreSQL lacks (GETDATE, JSON_PARSE, STRTOL, …) — statements are rewritten
  to call these.
- Redshift types as domains: ``super`` (over jsonb), ``varchar_<n>`` (VARCHAR counted in BYTES,
  as Redshift counts it) and ``varbyte_<n>`` (bytea with a byte limit). Domains travel with
  ``CREATE TABLE … (LIKE …)`` and show their base type in ``information_schema``.
- The physical layout Redshift would keep (DISTSTYLE, DISTKEY, SORTKEY, ENCODE), keyed by table
  OID so that renames follow and dropped tables vanish, readable through the views
  ``pg_table_def``, ``svv_table_info`` and an ``information_schema.columns`` that names SUPER and
  VARBYTE as Redshift does. Statements naming those relations are rewritten to these views.

Installation is idempotent and serialized by an advisory lock, on a side connection that commits
at once, so concurrent sessions never wait on one another's open transactions.
"""

from __future__ import annotations

import threading

import psycopg2
import psycopg2.extensions

SCHEMA = "redshift_standin"
CATALOG_VERSION = "5"
MAX_VARCHAR_BYTES = 65535
DEFAULT_VARCHAR_BYTES = 256
MAX_VARBYTE_BYTES = 16_777_216
DEFAULT_VARBYTE_BYTES = 64000
_INSTALL_LOCK_KEY = 7_406_170_925_001  # arbitrary constant: serializes installers of one database

INSTALL_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};

CREATE TABLE IF NOT EXISTS {SCHEMA}.catalog_version (version text NOT NULL);

DO $do$ BEGIN
  CREATE DOMAIN {SCHEMA}.super AS jsonb;
EXCEPTION WHEN duplicate_object THEN NULL;
END $do$;

CREATE TABLE IF NOT EXISTS {SCHEMA}.table_layout (
  relid oid PRIMARY KEY,
  diststyle text NOT NULL,          -- AUTO | EVEN | ALL | KEY
  distkey smallint,                 -- attnum of the DISTKEY column
  sortstyle text NOT NULL,          -- AUTO | COMPOUND | INTERLEAVED | NONE
  sortkey smallint[] NOT NULL DEFAULT '{{}}'
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.column_encoding (
  relid oid NOT NULL,
  attnum smallint NOT NULL,
  encoding text NOT NULL,
  PRIMARY KEY (relid, attnum)
);

CREATE OR REPLACE FUNCTION {SCHEMA}.getdate() RETURNS timestamp
  LANGUAGE sql STABLE AS $f$ SELECT date_trunc('second', statement_timestamp() AT TIME ZONE 'UTC') $f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.json_parse(text) RETURNS {SCHEMA}.super
  LANGUAGE sql IMMUTABLE STRICT AS $f$ SELECT $1::jsonb::{SCHEMA}.super $f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.json_serialize(jsonb) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $f$ SELECT $1::text $f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.is_valid_json(text) RETURNS boolean
  LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF $1 IS NULL THEN RETURN NULL; END IF;
  PERFORM $1::jsonb;
  RETURN true;
EXCEPTION WHEN others THEN RETURN false;
END $f$;

-- Redshift's SHA2(string, bits): the hex digest of the string's UTF-8 bytes; bits 0 (= 256), 224, 256,
-- 384 or 512, any other value an empty string.
CREATE OR REPLACE FUNCTION {SCHEMA}.sha2(text, integer) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $f$
  SELECT CASE $2
    WHEN 0 THEN encode(sha256(convert_to($1, 'UTF8')), 'hex')
    WHEN 224 THEN encode(sha224(convert_to($1, 'UTF8')), 'hex')
    WHEN 256 THEN encode(sha256(convert_to($1, 'UTF8')), 'hex')
    WHEN 384 THEN encode(sha384(convert_to($1, 'UTF8')), 'hex')
    WHEN 512 THEN encode(sha512(convert_to($1, 'UTF8')), 'hex')
    ELSE '' END $f$;

-- Redshift's TO_HEX takes numbers and VARBYTE (stored here as bytea).
CREATE OR REPLACE FUNCTION {SCHEMA}.to_hex(bytea) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $f$ SELECT encode($1, 'hex') $f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.to_hex(bigint) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $f$ SELECT pg_catalog.to_hex($1) $f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.strtol(num text, base integer) RETURNS bigint
  LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
  digits text := lower(btrim(num));
  negative boolean := false;
  result numeric := 0;
  d integer;
  ch text;
BEGIN
  IF base < 2 OR base > 36 THEN
    RAISE EXCEPTION 'STRTOL base must be between 2 and 36' USING ERRCODE = '22023';
  END IF;
  IF left(digits, 1) IN ('-', '+') THEN
    negative := left(digits, 1) = '-';
    digits := substr(digits, 2);
  END IF;
  IF base = 16 AND left(digits, 2) = '0x' THEN digits := substr(digits, 3); END IF;
  IF digits = '' THEN RETURN NULL; END IF;
  FOREACH ch IN ARRAY regexp_split_to_array(digits, '') LOOP
    d := position(ch IN '0123456789abcdefghijklmnopqrstuvwxyz') - 1;
    IF d < 0 OR d >= base THEN RETURN NULL; END IF;
    result := result * base + d;
  END LOOP;
  IF negative THEN result := -result; END IF;
  RETURN result::bigint;
END $f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.ensure_domain(kind text, length integer) RETURNS void
  LANGUAGE plpgsql AS $f$
DECLARE
  domain_name text := kind || '_' || length;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = '{SCHEMA}' AND t.typname = domain_name) THEN
    RETURN;
  END IF;
  IF kind = 'varchar' THEN
    EXECUTE format('CREATE DOMAIN {SCHEMA}.%I AS varchar(%s) CONSTRAINT %I CHECK (octet_length(VALUE) <= %s)',
                   domain_name, length, 'standin_bytes_' || domain_name, length);
  ELSIF kind = 'varbyte' THEN
    EXECUTE format('CREATE DOMAIN {SCHEMA}.%I AS bytea CONSTRAINT %I CHECK (octet_length(VALUE) <= %s)',
                   domain_name, 'standin_bytes_' || domain_name, length);
  ELSE
    RAISE EXCEPTION 'unknown stand-in domain kind %', kind;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $f$;

-- The Redshift name of a column type (SUPER, VARBYTE and byte-counted VARCHAR are domains here).
CREATE OR REPLACE FUNCTION {SCHEMA}.redshift_type(typid oid, typmod integer) RETURNS text
  LANGUAGE sql STABLE AS $f$
  SELECT CASE
    WHEN n.nspname = '{SCHEMA}' AND t.typname = 'super' THEN 'super'
    WHEN n.nspname = '{SCHEMA}' AND t.typname LIKE 'varchar\\_%' THEN
      'character varying(' || substr(t.typname, 9) || ')'
    WHEN n.nspname = '{SCHEMA}' AND t.typname LIKE 'varbyte\\_%' THEN
      'binary varying(' || substr(t.typname, 9) || ')'
    ELSE format_type(typid, typmod)
  END
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = typid
$f$;

-- Redshift's default compression for a column it was not told how to encode (ENCODE AUTO).
CREATE OR REPLACE FUNCTION {SCHEMA}.default_encoding(typid oid, in_sortkey boolean) RETURNS text
  LANGUAGE sql STABLE AS $f$
  SELECT CASE
    WHEN in_sortkey THEN 'none'
    WHEN bt.typname IN ('int2', 'int4', 'int8', 'numeric', 'date', 'timestamp', 'timestamptz') THEN 'az64'
    WHEN bt.typname IN ('varchar', 'bpchar', 'text') THEN 'lzo'
    ELSE 'none'
  END
  FROM pg_type t JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  WHERE t.oid = typid
$f$;

CREATE OR REPLACE FUNCTION {SCHEMA}.row_count(rel regclass) RETURNS bigint
  LANGUAGE plpgsql STABLE AS $f$
DECLARE result bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', rel) INTO result;
  RETURN result;
END $f$;

CREATE OR REPLACE VIEW {SCHEMA}.layout_of AS
  SELECT c.oid AS relid, n.nspname AS schemaname, c.relname AS tablename,
         coalesce(l.diststyle, 'AUTO') AS diststyle, l.distkey,
         coalesce(l.sortstyle, 'AUTO') AS sortstyle, coalesce(l.sortkey, '{{}}') AS sortkey
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN {SCHEMA}.table_layout l ON l.relid = c.oid
  WHERE c.relkind IN ('r', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', '{SCHEMA}')
    AND n.nspname NOT LIKE 'pg_toast%'
    AND (c.relpersistence <> 't' OR c.relnamespace = pg_my_temp_schema());

CREATE OR REPLACE VIEW {SCHEMA}.pg_table_def AS
  SELECT lo.schemaname::name AS schemaname, lo.tablename::name AS tablename, a.attname::name AS "column",
         {SCHEMA}.redshift_type(a.atttypid, a.atttypmod)::varchar AS type,
         coalesce(e.encoding, {SCHEMA}.default_encoding(a.atttypid, a.attnum = ANY (lo.sortkey)))::varchar
           AS encoding,
         (lo.distkey IS NOT NULL AND lo.distkey = a.attnum) AS distkey,
         coalesce((SELECT CASE WHEN lo.sortstyle = 'INTERLEAVED' AND k.pos % 2 = 0 THEN -k.pos ELSE k.pos END
                   FROM unnest(lo.sortkey) WITH ORDINALITY AS k(attnum, pos) WHERE k.attnum = a.attnum), 0)::int
           AS sortkey,
         a.attnotnull AS notnull
  FROM {SCHEMA}.layout_of lo
  JOIN pg_attribute a ON a.attrelid = lo.relid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN {SCHEMA}.column_encoding e ON e.relid = lo.relid AND e.attnum = a.attnum
  WHERE lo.schemaname = ANY (current_schemas(false));

CREATE OR REPLACE VIEW {SCHEMA}.svv_table_info AS
  SELECT * FROM (
    SELECT current_database()::text AS database, lo.schemaname::text AS schema, lo.relid::int AS table_id,
           lo.tablename::text AS "table",
           CASE lo.diststyle
             WHEN 'KEY' THEN 'KEY(' || (SELECT attname FROM pg_attribute WHERE attrelid = lo.relid
                                       AND attnum = lo.distkey) || ')'
             WHEN 'AUTO' THEN 'AUTO(ALL)'
             ELSE lo.diststyle
           END::text AS diststyle,
           CASE
             WHEN lo.sortstyle = 'AUTO' THEN 'AUTO(SORTKEY)'
             WHEN cardinality(lo.sortkey) = 0 THEN NULL
             WHEN lo.sortstyle = 'INTERLEAVED' THEN 'INTERLEAVED'
             ELSE (SELECT attname FROM pg_attribute WHERE attrelid = lo.relid AND attnum = lo.sortkey[1])
           END::text AS sortkey1,
           cardinality(lo.sortkey)::int AS sortkey_num,
           {SCHEMA}.row_count(lo.relid)::numeric(38,0) AS tbl_rows
    FROM {SCHEMA}.layout_of lo
  ) info
  -- Redshift's SVV_TABLE_INFO does not list empty tables.
  WHERE tbl_rows > 0;

CREATE OR REPLACE VIEW {SCHEMA}.information_schema_columns AS
  SELECT c.table_catalog, c.table_schema, c.table_name, c.column_name, c.ordinal_position, c.column_default,
         c.is_nullable,
         CASE
           WHEN c.domain_schema = '{SCHEMA}' AND c.domain_name = 'super' THEN 'super'
           WHEN c.domain_schema = '{SCHEMA}' AND c.domain_name LIKE 'varbyte\\_%' THEN 'binary varying'
           ELSE c.data_type
         END::information_schema.character_data AS data_type,
         CASE
           WHEN c.domain_schema = '{SCHEMA}' AND c.domain_name LIKE 'varbyte\\_%'
             THEN substr(c.domain_name, 9)::int
           ELSE c.character_maximum_length
         END::information_schema.cardinal_number AS character_maximum_length,
         c.character_octet_length, c.numeric_precision, c.numeric_precision_radix, c.numeric_scale,
         c.datetime_precision, c.interval_type, c.interval_precision, c.udt_catalog, c.udt_schema, c.udt_name,
         c.is_identity, c.is_generated
  FROM information_schema.columns c
  WHERE c.table_schema <> '{SCHEMA}';

DELETE FROM {SCHEMA}.catalog_version;
INSERT INTO {SCHEMA}.catalog_version VALUES ('{CATALOG_VERSION}');
"""


class CatalogInstaller:
    """Installs the stand-in catalog once per database (per process), and creates domains on demand."""

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user
        self._lock = threading.Lock()
        self._installed: set[str] = set()
        self._domains: dict[str, set[tuple[str, int]]] = {}

    def _connect(self, database: str) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database, connect_timeout=10)
        conn.autocommit = False
        return conn

    def ensure_installed(self, database: str) -> None:
        with self._lock:
            if database in self._installed:
                return
            conn = self._connect(database)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_INSTALL_LOCK_KEY,))
                    cur.execute(
                        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relname = 'catalog_version'",
                        (SCHEMA,),
                    )
                    current = None
                    if cur.fetchone():
                        cur.execute(f"SELECT version FROM {SCHEMA}.catalog_version")
                        row = cur.fetchone()
                        current = row[0] if row else None
                    if current != CATALOG_VERSION:
                        cur.execute(INSTALL_SQL)
                conn.commit()
            finally:
                conn.close()
            self._installed.add(database)

    def ensure_domain(self, database: str, kind: str, length: int) -> None:
        """Create ``redshift_standin.<kind>_<length>`` (committed at once, visible to every session)."""
        with self._lock:
            known = self._domains.setdefault(database, set())
            if (kind, length) in known:
                return
            conn = self._connect(database)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_INSTALL_LOCK_KEY,))
                    cur.execute(f"SELECT {SCHEMA}.ensure_domain(%s, %s)", (kind, length))
                conn.commit()
            finally:
                conn.close()
            known.add((kind, length))
