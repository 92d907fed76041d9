//! racefree's tables and server-side functions in PostgreSQL, and the statements of each
//! operation.
//!
//! Names, ids and keys are `bytea`: compared byte for byte whatever the database's collation,
//! and able to hold any string the other stores hold (PostgreSQL `text` cannot hold NUL). Record
//! values are JSON text, exactly as serialized. Every time is milliseconds: the server's
//! (`clock_timestamp()`, read after the row lock is held) when the `now` argument is NULL, the
//! store's injected clock otherwise.
//!
//! Where one row decides, the operation is one statement; where two rows decide (a claim: the
//! counter and the claim; a grant: the lease and the lock's token row; a reset: the counter and
//! its claims), a function locks the instance row first and reads the others in separate
//! statements, so each read, under READ COMMITTED, sees every transaction that held the lock
//! before it. (A single statement's subquery would use the snapshot taken before it waited.)

/// The schema version this build reads and writes (`racefree_meta`). Version 2 added the record
/// floors and tombstones, and the request ids of replay-safe grants and marks ([`VERSION_2`]); a
/// version 1 database is upgraded by [`MIGRATE_FROM_1`].
pub const SCHEMA_VERSION: i64 = 2;

/// The transaction-scoped advisory lock that serializes schema changes (any value; it is
/// released at commit, so it is safe behind PgBouncer's transaction pooling).
pub(super) const SCHEMA_LOCK: i64 = 0x7261_6365_6672_6565; // "racefree"

/// The default isolation of the connection's transactions (a role or database may set its own).
pub(super) const DEFAULT_ISOLATION: &str = "SELECT current_setting('default_transaction_isolation')";
/// Takes [`SCHEMA_LOCK`] until the transaction ends.
pub(super) const LOCK_SCHEMA: &str = "SELECT pg_advisory_xact_lock($1)";
/// Whether racefree's tables exist (in the connection's search path).
pub(super) const HAS_SCHEMA: &str = "SELECT to_regclass('racefree_meta') IS NOT NULL";
/// The version of the tables, once [`HAS_SCHEMA`] says they exist.
pub(super) const FIND_VERSION: &str = "SELECT value FROM racefree_meta WHERE name = 'schema_version'";

/// Creates the tables and functions that version 1 had and version 2 kept (run once, under
/// [`SCHEMA_LOCK`], when no racefree table exists); [`VERSION_2`] completes version 2.
pub(super) const CREATE: &str = r#"
CREATE TABLE racefree_meta (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE racefree_counters (ns bytea NOT NULL, counter bytea NOT NULL, next bigint NOT NULL,
    PRIMARY KEY (ns, counter));
CREATE TABLE racefree_claims (ns bytea NOT NULL, counter bytea NOT NULL, id bytea NOT NULL, idx bigint NOT NULL,
    PRIMARY KEY (ns, counter, id));
CREATE TABLE racefree_marks (ns bytea NOT NULL, guard bytea NOT NULL, stream bytea NOT NULL,
    marked integer NOT NULL, expires_at bigint NOT NULL, PRIMARY KEY (ns, guard, stream));
CREATE INDEX racefree_marks_by_expiry ON racefree_marks (ns, expires_at);
CREATE TABLE racefree_leases (ns bytea NOT NULL, lock bytea NOT NULL, key bytea NOT NULL,
    token bigint NOT NULL, deadline bigint NOT NULL, PRIMARY KEY (ns, lock, key));
CREATE INDEX racefree_leases_by_deadline ON racefree_leases (ns, deadline);
CREATE TABLE racefree_lock_tokens (ns bytea NOT NULL, lock bytea NOT NULL, last bigint NOT NULL,
    PRIMARY KEY (ns, lock));
CREATE TABLE racefree_records (ns bytea NOT NULL, space bytea NOT NULL, key bytea NOT NULL, value text NOT NULL,
    version bigint NOT NULL, fence bigint NOT NULL, PRIMARY KEY (ns, space, key));

-- The time of every decision: the injected clock's when given, the server's otherwise.
CREATE FUNCTION racefree_now(p_now bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(p_now, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
$$;

-- The counter's row, created at 0 when missing, locked until commit: every claim and reset of
-- the counter waits here. Returns its next index.
CREATE FUNCTION racefree_lock_counter(p_ns bytea, p_counter bytea) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_next bigint;
BEGIN
  LOOP
    SELECT next INTO v_next FROM racefree_counters WHERE ns = p_ns AND counter = p_counter FOR UPDATE;
    IF FOUND THEN RETURN v_next; END IF;
    -- Waits for a concurrent creator; then the loop locks the row it made (or this one).
    INSERT INTO racefree_counters VALUES (p_ns, p_counter, 0) ON CONFLICT DO NOTHING;
  END LOOP;
END $$;

-- -> (index, is_new); index -1 when the counter is at its largest value.
CREATE FUNCTION racefree_claim(p_ns bytea, p_counter bytea, p_id bytea, OUT idx bigint, OUT is_new boolean)
LANGUAGE plpgsql AS $$
DECLARE v_next bigint;
BEGIN
  is_new := false;
  -- A committed claim is final until a reset, which takes the counter's lock: no lock needed.
  SELECT c.idx INTO idx FROM racefree_claims c WHERE ns = p_ns AND counter = p_counter AND id = p_id;
  IF FOUND THEN RETURN; END IF;
  v_next := racefree_lock_counter(p_ns, p_counter);
  SELECT c.idx INTO idx FROM racefree_claims c WHERE ns = p_ns AND counter = p_counter AND id = p_id;
  IF FOUND THEN RETURN; END IF;
  IF v_next = 9223372036854775807 THEN idx := -1; RETURN; END IF;
  UPDATE racefree_counters SET next = v_next + 1 WHERE ns = p_ns AND counter = p_counter;
  INSERT INTO racefree_claims VALUES (p_ns, p_counter, p_id, v_next);
  idx := v_next;
  is_new := true;
END $$;

CREATE FUNCTION racefree_reset(p_ns bytea, p_counter bytea) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM racefree_lock_counter(p_ns, p_counter);
  DELETE FROM racefree_claims WHERE ns = p_ns AND counter = p_counter;
  DELETE FROM racefree_counters WHERE ns = p_ns AND counter = p_counter;
END $$;

-- -> (outcome 0 first | 1 duplicate | 2 out of order, events marked).
CREATE FUNCTION racefree_mark(p_ns bytea, p_guard bytea, p_stream bytea, p_position integer,
    p_retention bigint, p_now bigint, OUT outcome integer, OUT marked integer) LANGUAGE plpgsql AS $$
DECLARE v_marked integer; v_expires bigint; v_now bigint; v_exists boolean;
BEGIN
  LOOP
    SELECT m.marked, m.expires_at INTO v_marked, v_expires FROM racefree_marks m
      WHERE ns = p_ns AND guard = p_guard AND stream = p_stream FOR UPDATE;
    v_exists := FOUND;
    v_now := racefree_now(p_now);
    IF NOT v_exists OR v_expires <= v_now THEN v_marked := 0; END IF;
    marked := v_marked;
    IF p_position < v_marked THEN outcome := 1; RETURN; END IF;
    IF p_position > v_marked THEN outcome := 2; RETURN; END IF;
    outcome := 0;
    marked := v_marked + 1;
    IF v_exists THEN
      UPDATE racefree_marks SET marked = v_marked + 1, expires_at = v_now + p_retention
        WHERE ns = p_ns AND guard = p_guard AND stream = p_stream;
      RETURN;
    END IF;
    INSERT INTO racefree_marks VALUES (p_ns, p_guard, p_stream, 1, v_now + p_retention) ON CONFLICT DO NOTHING;
    IF FOUND THEN RETURN; END IF;
    -- Another transaction created the stream meanwhile: decide again on its row.
  END LOOP;
END $$;

-- -> (token, ms left); token NULL when the key is held, -1 when the lock has issued its largest.
--
-- The lease row is locked first, so the grants (and renewals) of one key are ordered by it; a
-- key without a row gets one, locked by its insert. The lock's token row is taken last, by one
-- `UPDATE`, and held only from there to the commit: grants of other keys wait for each other's
-- commits and nothing more, and tokens follow the order of commits. A held key takes one
-- statement, a new one three.
CREATE FUNCTION racefree_grant(p_ns bytea, p_lock bytea, p_key bytea, p_ttl bigint, p_now bigint,
    OUT token bigint, OUT left_ms bigint) LANGUAGE plpgsql AS $$
DECLARE v_now bigint; v_deadline bigint; v_created bigint; v_last bigint; v_inserted boolean := false;
BEGIN
  LOOP
    -- The key's row: inserted (and locked) when there is none, else read without a lock.
    WITH created AS (
      INSERT INTO racefree_leases VALUES (p_ns, p_lock, p_key, 0, racefree_now(p_now) + p_ttl)
      ON CONFLICT DO NOTHING RETURNING deadline)
    SELECT (SELECT deadline FROM created),
           (SELECT deadline FROM racefree_leases WHERE ns = p_ns AND lock = p_lock AND key = p_key)
      INTO v_created, v_deadline;
    IF v_created IS NOT NULL THEN
      v_inserted := true;
      v_now := v_created - p_ttl;
      EXIT;
    END IF;
    IF v_deadline IS NOT NULL THEN
      IF v_deadline > racefree_now(p_now) THEN RETURN; END IF;
      -- Expired: lock it (a renewal in flight commits first, and its deadline is judged).
      SELECT deadline INTO v_deadline FROM racefree_leases
        WHERE ns = p_ns AND lock = p_lock AND key = p_key FOR UPDATE;
      IF FOUND THEN
        v_now := racefree_now(p_now);
        IF v_deadline > v_now THEN RETURN; END IF;
        EXIT;
      END IF;
    END IF;
    -- Removed meanwhile (a sweep, a release), or created by a grant that committed after this
    -- statement began: look again.
  END LOOP;
  LOOP
    UPDATE racefree_lock_tokens SET last = last + 1
      WHERE ns = p_ns AND lock = p_lock AND last < 9223372036854775807 RETURNING last INTO token;
    EXIT WHEN FOUND;
    -- No row in the UPDATE's snapshot, or the lock's last token issued. (A row another first
    -- grant committed after that snapshot shows here: then the UPDATE runs again.)
    SELECT last INTO v_last FROM racefree_lock_tokens WHERE ns = p_ns AND lock = p_lock;
    IF v_last = 9223372036854775807 THEN
      token := -1;
      IF v_inserted THEN DELETE FROM racefree_leases WHERE ns = p_ns AND lock = p_lock AND key = p_key; END IF;
      RETURN;
    END IF;
    IF NOT FOUND THEN
      INSERT INTO racefree_lock_tokens VALUES (p_ns, p_lock, 0) ON CONFLICT DO NOTHING;
    END IF;
  END LOOP;
  UPDATE racefree_leases SET token = racefree_grant.token, deadline = v_now + p_ttl
    WHERE ns = p_ns AND lock = p_lock AND key = p_key;
  left_ms := p_ttl;
END $$;

INSERT INTO racefree_meta VALUES ('schema_version', 1);
"#;

/// Version 2: a record's versions never repeat. A space keeps the largest version it deleted
/// (`racefree_record_floors`) and a new record starts above it; a deleted record that accepted a
/// fencing token stays as its row with no value (a tombstone keeping its version and fence)
/// until its key is written again. The tombstone is the record's own row, so the row lock orders
/// every operation on the key; in a table of its own, a delete could commit one between a put's
/// read of it and its check for the record. And grants and marks are replay-safe: a lease keeps
/// the request that was granted it, a stream the request of its last mark. A fencing token is
/// never below the server's clock in microseconds, so tokens grow across a failover that lost
/// the last grants. Run after [`CREATE`], and by [`MIGRATE_FROM_1`].
pub(super) const VERSION_2: &str = r#"
ALTER TABLE racefree_records ALTER COLUMN value DROP NOT NULL;
CREATE TABLE IF NOT EXISTS racefree_record_floors (ns bytea NOT NULL, space bytea NOT NULL,
    deleted bigint NOT NULL, PRIMARY KEY (ns, space));

-- -> (outcome 0 written | 1 conflict | 2 stale token, the new version | the current version
-- (-1 none) | the latest token). The rules of `decide_record_write`.
CREATE OR REPLACE FUNCTION racefree_put(p_ns bytea, p_space bytea, p_key bytea, p_value text, p_expected bigint,
    p_token bigint, OUT outcome integer, OUT n bigint) LANGUAGE plpgsql AS $$
DECLARE v_live boolean; v_version bigint; v_fence bigint; v_row boolean;
BEGIN
  LOOP
    SELECT value IS NOT NULL, version, fence INTO v_live, v_version, v_fence FROM racefree_records
      WHERE ns = p_ns AND space = p_space AND key = p_key FOR UPDATE;
    v_row := FOUND;
    v_fence := coalesce(v_fence, 0);
    IF p_token IS NOT NULL AND p_token < v_fence THEN outcome := 2; n := v_fence; RETURN; END IF;
    IF v_row AND v_live THEN
      IF p_expected IS NULL OR p_expected <> v_version THEN outcome := 1; n := v_version; RETURN; END IF;
      UPDATE racefree_records SET value = p_value, version = v_version + 1, fence = greatest(v_fence, coalesce(p_token, 0))
        WHERE ns = p_ns AND space = p_space AND key = p_key;
      outcome := 0; n := v_version + 1;
      RETURN;
    END IF;
    IF p_expected IS NOT NULL THEN outcome := 1; n := -1; RETURN; END IF;
    -- The floor, shared-locked to the commit: a delete in the space (which raises it under an
    -- exclusive lock) commits before this read or after this create, never in between, where a
    -- reader could see its effect and then this record below it. The row must exist to be locked.
    INSERT INTO racefree_record_floors VALUES (p_ns, p_space, 0) ON CONFLICT DO NOTHING;
    SELECT deleted + 1 INTO v_version FROM racefree_record_floors WHERE ns = p_ns AND space = p_space FOR SHARE;
    IF v_row THEN
      UPDATE racefree_records SET value = p_value, version = v_version, fence = greatest(v_fence, coalesce(p_token, 0))
        WHERE ns = p_ns AND space = p_space AND key = p_key;
      outcome := 0; n := v_version;
      RETURN;
    END IF;
    INSERT INTO racefree_records VALUES (p_ns, p_space, p_key, p_value, v_version, coalesce(p_token, 0))
      ON CONFLICT DO NOTHING;
    IF FOUND THEN outcome := 0; n := v_version; RETURN; END IF;
    -- Another transaction created the key's row meanwhile: decide again on it.
  END LOOP;
END $$;

-- -> (outcome 0 done | 1 conflict, 1 deleted | 0 none | the current version (-1 none)).
CREATE OR REPLACE FUNCTION racefree_delete(p_ns bytea, p_space bytea, p_key bytea, p_expected bigint,
    OUT outcome integer, OUT n bigint) LANGUAGE plpgsql AS $$
DECLARE v_version bigint; v_fence bigint;
BEGIN
  SELECT version, fence INTO v_version, v_fence FROM racefree_records
    WHERE ns = p_ns AND space = p_space AND key = p_key AND value IS NOT NULL FOR UPDATE;
  IF p_expected IS NOT NULL AND v_version IS DISTINCT FROM p_expected THEN
    outcome := 1; n := coalesce(v_version, -1); RETURN;
  END IF;
  outcome := 0;
  IF v_version IS NULL THEN n := 0; RETURN; END IF;
  IF v_fence > 0 THEN
    UPDATE racefree_records SET value = NULL WHERE ns = p_ns AND space = p_space AND key = p_key;
  ELSE
    DELETE FROM racefree_records WHERE ns = p_ns AND space = p_space AND key = p_key;
  END IF;
  INSERT INTO racefree_record_floors AS f VALUES (p_ns, p_space, v_version)
    ON CONFLICT (ns, space) DO UPDATE SET deleted = greatest(f.deleted, excluded.deleted);
  n := 1;
END $$;

-- Replay-safe grants and marks: the request that was granted a lease, and the request of a
-- stream's last mark, are kept with them; the same request sent again gets the same answer.
ALTER TABLE racefree_leases ADD COLUMN IF NOT EXISTS request bytea;
ALTER TABLE racefree_marks ADD COLUMN IF NOT EXISTS request bytea;
DROP FUNCTION IF EXISTS racefree_mark(bytea, bytea, bytea, integer, bigint, bigint);
DROP FUNCTION IF EXISTS racefree_grant(bytea, bytea, bytea, bigint, bigint);

-- -> (outcome 0 first | 1 duplicate | 2 out of order, events marked). The request of the last
-- mark sent again is answered `first` again (a replay, not a duplicate).
CREATE OR REPLACE FUNCTION racefree_mark(p_ns bytea, p_guard bytea, p_stream bytea, p_position integer,
    p_retention bigint, p_now bigint, p_request bytea, OUT outcome integer, OUT marked integer)
LANGUAGE plpgsql AS $$
DECLARE v_marked integer; v_expires bigint; v_now bigint; v_exists boolean; v_request bytea;
BEGIN
  LOOP
    SELECT m.marked, m.expires_at, m.request INTO v_marked, v_expires, v_request FROM racefree_marks m
      WHERE ns = p_ns AND guard = p_guard AND stream = p_stream FOR UPDATE;
    v_exists := FOUND;
    v_now := racefree_now(p_now);
    IF NOT v_exists OR v_expires <= v_now THEN v_marked := 0; END IF;
    marked := v_marked;
    IF p_position < v_marked THEN
      outcome := 1;
      IF p_position = v_marked - 1 AND length(p_request) > 0 AND v_request = p_request THEN outcome := 0; END IF;
      RETURN;
    END IF;
    IF p_position > v_marked THEN outcome := 2; RETURN; END IF;
    outcome := 0;
    marked := v_marked + 1;
    IF v_exists THEN
      UPDATE racefree_marks SET marked = v_marked + 1, expires_at = v_now + p_retention, request = p_request
        WHERE ns = p_ns AND guard = p_guard AND stream = p_stream;
      RETURN;
    END IF;
    INSERT INTO racefree_marks (ns, guard, stream, marked, expires_at, request)
      VALUES (p_ns, p_guard, p_stream, 1, v_now + p_retention, p_request) ON CONFLICT DO NOTHING;
    IF FOUND THEN RETURN; END IF;
    -- Another transaction created the stream meanwhile: decide again on its row.
  END LOOP;
END $$;

-- A fencing token is never below the server's clock in microseconds (whatever clock judges
-- leases): a standby promoted after losing the last grants' commits has a smaller last token,
-- but a later clock, so it still issues larger tokens than the old primary did.
CREATE OR REPLACE FUNCTION racefree_token_floor() RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint
$$;

-- -> (token, ms left); token NULL when the key is held, -1 when the lock has issued its largest.
-- A token is one above the lock's last, and at least `racefree_token_floor()`.
-- The request that was granted the lease, sent again while it lasts, gets that lease again.
--
-- The lease row is locked first, so the grants (and renewals) of one key are ordered by it; a
-- key without a row gets one, locked by its insert. The lock's token row is taken last, by one
-- `UPDATE`, and held only from there to the commit: grants of other keys wait for each other's
-- commits and nothing more, and tokens follow the order of commits. A held key takes one
-- statement, a new one three.
CREATE OR REPLACE FUNCTION racefree_grant(p_ns bytea, p_lock bytea, p_key bytea, p_ttl bigint, p_now bigint,
    p_request bytea, OUT token bigint, OUT left_ms bigint) LANGUAGE plpgsql AS $$
DECLARE v_now bigint; v_deadline bigint; v_created bigint; v_last bigint; v_inserted boolean := false;
  v_token bigint; v_request bytea;
BEGIN
  LOOP
    -- The key's row: inserted (and locked) when there is none, else read without a lock.
    WITH created AS (
      INSERT INTO racefree_leases (ns, lock, key, token, deadline, request)
        VALUES (p_ns, p_lock, p_key, 0, racefree_now(p_now) + p_ttl, p_request)
      ON CONFLICT DO NOTHING RETURNING deadline)
    SELECT c.deadline, l.deadline, l.token, l.request INTO v_created, v_deadline, v_token, v_request
      FROM (SELECT 1) AS one
      LEFT JOIN created c ON true
      LEFT JOIN racefree_leases l ON l.ns = p_ns AND l.lock = p_lock AND l.key = p_key;
    IF v_created IS NOT NULL THEN
      v_inserted := true;
      v_now := v_created - p_ttl;
      EXIT;
    END IF;
    IF v_deadline IS NOT NULL THEN
      v_now := racefree_now(p_now);
      IF v_deadline > v_now THEN
        IF length(p_request) > 0 AND v_request = p_request THEN token := v_token; left_ms := v_deadline - v_now; END IF;
        RETURN;
      END IF;
      -- Expired: lock it (a renewal in flight commits first, and its deadline is judged).
      SELECT l.deadline, l.token, l.request INTO v_deadline, v_token, v_request FROM racefree_leases l
        WHERE ns = p_ns AND lock = p_lock AND key = p_key FOR UPDATE;
      IF FOUND THEN
        v_now := racefree_now(p_now);
        IF v_deadline > v_now THEN
          IF length(p_request) > 0 AND v_request = p_request THEN token := v_token; left_ms := v_deadline - v_now; END IF;
          RETURN;
        END IF;
        EXIT;
      END IF;
    END IF;
    -- Removed meanwhile (a sweep, a release), or created by a grant that committed after this
    -- statement began: look again.
  END LOOP;
  LOOP
    UPDATE racefree_lock_tokens SET last = greatest(last + 1, racefree_token_floor())
      WHERE ns = p_ns AND lock = p_lock AND last < 9223372036854775807 RETURNING last INTO token;
    EXIT WHEN FOUND;
    -- No row in the UPDATE's snapshot, or the lock's last token issued. (A row another first
    -- grant committed after that snapshot shows here: then the UPDATE runs again.)
    SELECT last INTO v_last FROM racefree_lock_tokens WHERE ns = p_ns AND lock = p_lock;
    IF v_last = 9223372036854775807 THEN
      token := -1;
      IF v_inserted THEN DELETE FROM racefree_leases WHERE ns = p_ns AND lock = p_lock AND key = p_key; END IF;
      RETURN;
    END IF;
    IF NOT FOUND THEN
      INSERT INTO racefree_lock_tokens VALUES (p_ns, p_lock, 0) ON CONFLICT DO NOTHING;
    END IF;
  END LOOP;
  UPDATE racefree_leases SET token = racefree_grant.token, deadline = v_now + p_ttl, request = p_request
    WHERE ns = p_ns AND lock = p_lock AND key = p_key;
  left_ms := p_ttl;
END $$;

UPDATE racefree_meta SET value = 2 WHERE name = 'schema_version';
"#;

/// Upgrades a version 1 database to version 2: record values may be NULL (tombstones), the floors
/// table starts empty (which is what version 1 held), and the two record functions are replaced.
pub(super) const MIGRATE_FROM_1: &str = VERSION_2;

pub(super) const NEXT: &str = "INSERT INTO racefree_counters AS c VALUES ($1, $2, 1)
    ON CONFLICT (ns, counter) DO UPDATE SET next = c.next + 1 WHERE c.next < 9223372036854775807
    RETURNING c.next - 1";
pub(super) const CLAIM: &str = "SELECT idx, is_new FROM racefree_claim($1, $2, $3)";
pub(super) const INDEX_OF: &str =
    "SELECT idx FROM racefree_claims WHERE ns = $1 AND counter = $2 AND id = $3";
pub(super) const PEEK: &str = "SELECT next FROM racefree_counters WHERE ns = $1 AND counter = $2";
pub(super) const SET: &str = "INSERT INTO racefree_counters VALUES ($1, $2, $3)
    ON CONFLICT (ns, counter) DO UPDATE SET next = excluded.next";
pub(super) const RESET: &str = "SELECT racefree_reset($1, $2)";

pub(super) const MARK: &str = "SELECT outcome, marked FROM racefree_mark($1, $2, $3, $4, $5, $6, $7)";
pub(super) const MARKED: &str =
    "SELECT marked FROM racefree_marks WHERE ns = $1 AND guard = $2 AND stream = $3 AND expires_at > racefree_now($4)";
pub(super) const FORGET: &str = "DELETE FROM racefree_marks WHERE ns = $1 AND guard = $2 AND stream = $3
    RETURNING expires_at > racefree_now($4)";

pub(super) const GRANT: &str = "SELECT token, left_ms FROM racefree_grant($1, $2, $3, $4, $5, $6)";
pub(super) const RENEW: &str = "UPDATE racefree_leases SET deadline = racefree_now($5) + $6
    WHERE ns = $1 AND lock = $2 AND key = $3 AND token = $4 AND deadline > racefree_now($5) RETURNING 1";
pub(super) const RELEASE: &str = "DELETE FROM racefree_leases
    WHERE ns = $1 AND lock = $2 AND key = $3 AND token = $4 AND deadline > racefree_now($5) RETURNING 1";
pub(super) const HOLDER: &str = "SELECT token, deadline - racefree_now($4) FROM racefree_leases
    WHERE ns = $1 AND lock = $2 AND key = $3 AND deadline > racefree_now($4)";

pub(super) const GET: &str = "SELECT value, version FROM racefree_records
    WHERE ns = $1 AND space = $2 AND key = $3 AND value IS NOT NULL";
pub(super) const PUT: &str = "SELECT outcome, n FROM racefree_put($1, $2, $3, $4, $5, $6)";
pub(super) const DELETE: &str = "SELECT outcome, n FROM racefree_delete($1, $2, $3, $4)";

/// Removes expired leases and marks (at most `$3` of each); returns how many.
///
/// The expiry is tested again by each `DELETE` itself, not only in the subquery that picks the
/// rows: a row granted or marked anew after the statement's snapshot is re-checked there, after
/// its lock is taken, and kept. (Tested only in the subquery, the sweep deleted live leases: the
/// linearizability check caught it.)
pub(super) const SWEEP: &str = "WITH now AS (SELECT racefree_now($2) AS ms),
    leases AS (DELETE FROM racefree_leases WHERE (ns, lock, key) IN (SELECT ns, lock, key FROM racefree_leases
        WHERE ns = $1 AND deadline <= (SELECT ms FROM now) LIMIT $3) AND deadline <= (SELECT ms FROM now) RETURNING 1),
    marks AS (DELETE FROM racefree_marks WHERE (ns, guard, stream) IN (SELECT ns, guard, stream FROM racefree_marks
        WHERE ns = $1 AND expires_at <= (SELECT ms FROM now) LIMIT $3) AND expires_at <= (SELECT ms FROM now) RETURNING 1)
    SELECT (SELECT count(*) FROM leases) + (SELECT count(*) FROM marks)";
pub(super) const ENTRIES: &str = "SELECT (SELECT count(*) FROM racefree_counters WHERE ns = $1)
    + (SELECT count(*) FROM racefree_claims WHERE ns = $1) + (SELECT count(*) FROM racefree_marks WHERE ns = $1)
    + (SELECT count(*) FROM racefree_leases WHERE ns = $1) + (SELECT count(*) FROM racefree_records WHERE ns = $1)";

pub(super) const INSPECT_COUNTERS: &str = "SELECT counter, next,
    (SELECT count(*) FROM racefree_claims c WHERE c.ns = k.ns AND c.counter = k.counter)
    FROM racefree_counters k WHERE ns = $1";
pub(super) const INSPECT_LEASES: &str =
    "SELECT lock, key, token, deadline FROM racefree_leases WHERE ns = $1 AND deadline > racefree_now($2)";
pub(super) const INSPECT_STREAMS: &str =
    "SELECT guard, stream, marked, expires_at FROM racefree_marks WHERE ns = $1 AND expires_at > racefree_now($2)";
pub(super) const INSPECT_RECORDS: &str =
    "SELECT space, key, version FROM racefree_records WHERE ns = $1 AND value IS NOT NULL";
/// The time `inspect` judges by, read in its snapshot, to report deadlines on the store's clock.
pub(super) const INSPECT_NOW: &str = "SELECT racefree_now($1)";
