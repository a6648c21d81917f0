// Package postgres is an idempotency.Store in a PostgreSQL table (pgx v5),
// shared by consumers on many hosts.
//
// Every operation is one SQL statement, atomic on its own: a claim is an
// INSERT ... ON CONFLICT DO UPDATE that takes the key only where it is
// free, released or expired, and reports the current state otherwise.
// Leases and retention run on the database's clock (now()), never on a
// client's. ClaimBatch is one statement for the whole batch, locking its
// keys in byte order so that concurrent batches cannot deadlock.
//
// A claim whose lease ran out but that nobody took over can still be
// completed or released with its token, as in the memory store, until
// Cleanup removes the row.
//
// The table is created by Migrate from the embedded schema.sql, which
// documents every column. Operations on a database without it fail with
// an error wrapping ErrNoSchema.
package postgres

import (
	"context"
	_ "embed" // schema.sql
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// DefaultTable is the table name when Options.Table is empty.
const DefaultTable = "herald_idempotency"

//go:embed schema.sql
var schemaSQL string

// ErrNoSchema: the store's table does not exist; run Migrate. It wraps
// providers.ErrNotFound.
var ErrNoSchema = fmt.Errorf("idempotency/postgres: table missing, run (*Store).Migrate: %w",
	providers.ErrNotFound)

// Options configure a Store.
type Options struct {
	// Table is the table's name, optionally schema-qualified
	// ("herald.idempotency"); "herald_idempotency" when empty. Each part
	// is a letter or underscore followed by up to 49 letters, digits or
	// underscores.
	Table string
}

// Store is an idempotency.Store in one PostgreSQL table. It is safe for
// concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	table string // for errors: as given
	err   error  // a bad Options.Table, reported by every operation

	sqlClaim, sqlComplete, sqlRelease, sqlCleanup, sqlSchema string
}

var _ idempotency.Store = (*Store)(nil)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,49}(\.[A-Za-z_][A-Za-z0-9_]{0,49})?$`)

// New returns a store on pool. The store does not own the pool: the
// caller closes it. An invalid Options.Table makes every operation fail
// with an error wrapping providers.ErrInvalid.
func New(pool *pgxpool.Pool, opts Options) *Store {
	table := opts.Table
	if table == "" {
		table = DefaultTable
	}
	s := &Store{pool: pool, table: table}
	if !identRE.MatchString(table) {
		s.err = fmt.Errorf("idempotency/postgres: %w: table name %q is not a plain identifier",
			providers.ErrInvalid, table)
		return s
	}
	parts := strings.Split(table, ".")
	quoted := pgx.Identifier(parts).Sanitize()
	index := pgx.Identifier{parts[len(parts)-1] + "_until_idx"}.Sanitize()
	expand := func(q string) string {
		return strings.NewReplacer("{{table}}", quoted, "{{index}}", index).Replace(q)
	}
	s.sqlSchema = expand(schemaSQL)
	s.sqlClaim = expand(claimSQL)
	s.sqlComplete = expand(`UPDATE {{table}}
		SET state = 3, until = now() + $3 * interval '1 microsecond'
		WHERE key = $1 AND token = $2 AND state = 1`)
	s.sqlRelease = expand(`UPDATE {{table}}
		SET state = 2, until = least(until, now())
		WHERE key = $1 AND token = $2 AND state = 1`)
	s.sqlCleanup = expand(`WITH doomed AS (
			SELECT key FROM {{table}} WHERE until <= now()
			ORDER BY until LIMIT $1 FOR UPDATE SKIP LOCKED)
		DELETE FROM {{table}} t USING doomed WHERE t.key = doomed.key`)
	return s
}

// Migrate creates the store's table and index when missing. It is safe
// to run at every start and from many processes at once: concurrent runs
// queue on a transaction-scoped advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`,
			"herald/idempotency/migrate/"+s.table); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.sqlSchema)
		return err
	})
	if err != nil {
		return s.wrap("migrate", "", err)
	}
	return nil
}

// Complete implements idempotency.Store. A retention of zero or less lets
// the key be claimed again at once.
func (s *Store) Complete(ctx context.Context, key string, token idempotency.Token,
	retain time.Duration) error {
	return s.settle(ctx, "complete", s.sqlComplete, key, token, retain.Microseconds())
}

// Release implements idempotency.Store. The row keeps its token, so that
// the next claim's token is larger still.
func (s *Store) Release(ctx context.Context, key string, token idempotency.Token) error {
	return s.settle(ctx, "release", s.sqlRelease, key, token)
}

func (s *Store) settle(ctx context.Context, op, query, key string, token idempotency.Token,
	args ...any) error {
	if err := idempotency.ValidateKey(key); err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	if err := ctx.Err(); err != nil {
		return s.wrap(op, key, err)
	}
	tag, err := s.pool.Exec(ctx, query, append([]any{[]byte(key), int64(token)}, args...)...)
	switch {
	case err != nil:
		return s.wrap(op, key, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("idempotency/postgres: %s %q with token %d in %s: %w",
			op, key, token, s.table, idempotency.ErrStaleToken)
	}
	return nil
}

// Cleanup deletes up to limit rows whose lease or retention ended (oldest
// first) and returns how many it deleted. Claims already ignore such
// rows; Cleanup only keeps the table small. A removed claim whose lease
// had ended can no longer be completed: its worker's Complete fails with
// ErrStaleToken. Many consumers may run it at
// once: each skips the rows another is deleting (FOR UPDATE SKIP LOCKED).
// Call it periodically, e.g. every minute with a limit of 10000, until it
// returns fewer than limit.
func (s *Store) Cleanup(ctx context.Context, limit int) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	if limit <= 0 {
		return 0, fmt.Errorf("idempotency/postgres: cleanup %s: %w: limit must be positive, got %d",
			s.table, providers.ErrInvalid, limit)
	}
	tag, err := s.pool.Exec(ctx, s.sqlCleanup, limit)
	if err != nil {
		return 0, s.wrap("cleanup", "", err)
	}
	return tag.RowsAffected(), nil
}

// wrap names the operation, key and table. A missing table wraps
// ErrNoSchema; a failure to reach the database providers.ErrUnavailable;
// a done context the context's error.
func (s *Store) wrap(op, key string, err error) error {
	what := op + " in " + s.table
	if key != "" {
		what = fmt.Sprintf("%s %q in %s", op, key, s.table)
	}
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return fmt.Errorf("idempotency/postgres: %s: %w: %w", what, ErrNoSchema, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.As(err, &connErr), errors.As(err, &netErr):
		return fmt.Errorf("idempotency/postgres: %s: %w: %w", what, providers.ErrUnavailable, err)
	case strings.Contains(err.Error(), "closed pool"):
		return fmt.Errorf("idempotency/postgres: %s: %w: %w", what, providers.ErrClosed, err)
	}
	return fmt.Errorf("idempotency/postgres: %s: %w", what, err)
}
