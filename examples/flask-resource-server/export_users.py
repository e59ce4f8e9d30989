"""Export a Flask-SQLAlchemy users table as JSON Lines for `keyward users import`.

    python3 export_users.py sqlite:///instance/app.db > users.jsonl
    python3 export_users.py postgresql://user@host/db --table user \
        --username-column name --password-column password > users.jsonl
    keyward users import users.jsonl

Each row becomes {"id", "username", "email", "email_verified", "password_hash",
"disabled", "created_at"}; the hashes (Werkzeug's generate_password_hash, or Django's)
are copied unchanged and Keyward replaces them with argon2id at each user's first
login. A sqlite:/// URL (or a file path) needs only Python; other databases need
SQLAlchemy (Debian: python3-sqlalchemy) and its driver. The output holds password
hashes: keep it private and delete it after the import.
"""

import argparse
import datetime
import json
import sys


def rows(url, query):
    """Yield the rows of query as dicts."""
    if url.startswith("sqlite:///") or "://" not in url:
        import sqlite3

        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        for r in con.execute(query):
            yield dict(r)
        con.close()
        return
    import sqlalchemy  # Debian: python3-sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as con:
        for r in con.execute(sqlalchemy.text(query)).mappings():
            yield dict(r)


def when(v):
    """RFC 3339 from a datetime, an ISO string (SQLite stores them so) or None."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        v = datetime.datetime.fromisoformat(v)
    if v.tzinfo is None:
        v = v.replace(tzinfo=datetime.timezone.utc)  # Flask-SQLAlchemy apps usually store UTC
    return v.isoformat().replace("+00:00", "Z")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url", help="database URL: sqlite:///path/app.db, postgresql://..., or a SQLite file")
    p.add_argument("--table", default="user", help="the users table (Flask-SQLAlchemy names model User 'user')")
    p.add_argument("--id-column", default="id", help="kept as the subject id; '' for new ids")
    p.add_argument("--username-column", default="username")
    p.add_argument("--email-column", default="email", help="'' when the table has none")
    p.add_argument("--password-column", default="password_hash")
    p.add_argument("--created-column", default="", help="a creation time column, if any")
    p.add_argument("--verified-column", default="", help="a boolean 'email confirmed' column, if any")
    p.add_argument("--active-column", default="", help="a boolean 'active' column (false: disabled), if any")
    a = p.parse_args()

    cols = {"username": a.username_column, "password_hash": a.password_column}
    for key, col in (("id", a.id_column), ("email", a.email_column), ("created_at", a.created_column),
                     ("email_verified", a.verified_column), ("active", a.active_column)):
        if col:
            cols[key] = col
    for col in list(cols.values()) + [a.table]:
        if not col.replace("_", "").isalnum():
            sys.exit(f"not a plain identifier: {col!r}")
    select = ", ".join(f'"{c}" AS "{k}"' for k, c in cols.items())
    n = 0
    for r in rows(a.url, f'SELECT {select} FROM "{a.table}" ORDER BY 1'):
        rec = {
            "username": r["username"],
            "email": r.get("email") or "",
            "email_verified": bool(r.get("email_verified", False)),
            "password_hash": r["password_hash"] or "",
            "disabled": not bool(r.get("active", True)),
        }
        if "id" in r and r["id"] is not None:
            rec["id"] = r["id"] if isinstance(r["id"], int) else str(r["id"])
        created = when(r.get("created_at"))
        if created:
            rec["created_at"] = created
        print(json.dumps(rec, ensure_ascii=False))
        n += 1
    print(f"exported {n} users", file=sys.stderr)


if __name__ == "__main__":
    main()
