"""The skeleton ``config setup`` writes: a working local configuration to edit."""

from __future__ import annotations

from pathlib import Path

SKELETON: dict[str, str] = {
    "connections.yml": """\
# Connections: MySQL sources, warehouse targets (Redshift, or PostgreSQL for local use) and staging.
# Values may use ${VAR} or ${VAR:-default}; secrets belong in the environment or .env, not here.
connections:
  sources:
    shop:
      host: 127.0.0.1
      port: 3306
      database: shop
      username: root
      password: "${SHOP_MYSQL_PASSWORD:-}"
      # ssh_tunnel: {enabled: true, host: bastion.example.com, username: ec2-user,
      #              private_key_path: ~/.ssh/bastion.pem}
  targets:
    dw:
      type: postgres          # redshift (default) or postgres
      host: 127.0.0.1
      port: 5432
      database: dw
      schema: shop
      username: postgres
      password: "${DW_PASSWORD:-}"
      # iam_role: arn:aws:iam::123456789012:role/redshift-copy   (Redshift COPY)
s3_configs:
  local:
    local_path: ./.staging    # or bucket_name/region/endpoint_url for S3
backup:
  batch_size: 500000          # rows per staged parquet file at most
""",
    "pipelines/shop.yml": """\
pipeline:
  name: shop
  source: shop
  target: dw
  s3_config: local
  processing: {batch_size: 100000}   # rows per extract page
  # schedule: {cron: "*/15 * * * *"}
tables:
  shop.orders:
    cdc_strategy: hybrid
    cdc_timestamp_column: updated_at
    cdc_id_column: id
""",
    "environments/development.yml": """\
# Deep-merged over every pipeline when SYNC_ENV=development.
pipeline:
  processing: {batch_size: 10000}
""",
    "environments/production.yml": """\
# Deep-merged over every pipeline when SYNC_ENV=production (the default, as in the older tool).
pipeline: {}
""",
    "templates/standard_fact_table.yml": """\
# Use with `extends: standard_fact_table` in a table entry.
cdc_strategy: hybrid
cdc_timestamp_column: updated_at
cdc_id_column: id
table_type: fact
""",
    "tables/README.md": """\
Files here are named <schema.table>.yml (or <table>.yml) and hold settings shared by every
pipeline that lists the table; the pipeline's own entry is merged over them.
""",
}


def write_skeleton(config_dir: Path, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the skeleton; returns (written, kept because they existed).

    In a directory that already has its own connections.yml only that file is "kept": the example
    pipeline and environments name the skeleton's connections and would break the existing project.
    """
    written: list[Path] = []
    kept: list[Path] = []
    existing_project = (config_dir / "connections.yml").exists() and not force
    for relative, content in SKELETON.items():
        path = config_dir / relative
        if path.exists() and not force:
            kept.append(path)
            continue
        if existing_project:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written, kept
