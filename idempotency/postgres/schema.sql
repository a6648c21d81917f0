-- Schema of herald's PostgreSQL idempotency store, applied by
-- (*Store).Migrate. Every statement is idempotent (IF NOT EXISTS), so
-- Migrate may run at every start, from many processes at once (it holds
-- an advisory lock while it runs).
--
-- {{table}} stands for Options.Table (default herald_idempotency), quoted
-- as an identifier; {{index}} for "<table>_until_idx".
--
-- One row per idempotency key, "<consumer>/<message ID>":
--
--   key          the key's UTF-8 bytes (bytea: any valid UTF-8 string is a
--                key, NUL included, and sorts bytewise), at most 512 bytes
--   fingerprint  the payload fingerprint, a uint64 stored as its int8 bits
--   token        fencing token of the key's latest claim: the claim's time
--                in microseconds since 1970, or the previous token + 1 if
--                larger, so tokens grow for a key even across Cleanup
--   state        1 held, 2 released, 3 completed
--   until        end of the lease (held) or of the retention (completed);
--                once past (or once released) the key can be claimed again
--
-- Times are the database server's (now()), never a client's.

CREATE TABLE IF NOT EXISTS {{table}} (
    key         bytea       PRIMARY KEY CHECK (octet_length(key) BETWEEN 1 AND 512),
    fingerprint bigint      NOT NULL,
    token       bigint      NOT NULL,
    state       smallint    NOT NULL CHECK (state IN (1, 2, 3)),
    until       timestamptz NOT NULL
);

-- Cleanup finds expired rows by their end.
CREATE INDEX IF NOT EXISTS {{index}} ON {{table}} (until);
