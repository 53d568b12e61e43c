// Package sql holds hookrelay's delivery-audit queries: plain .sql files that
// run as they are with psql (psql -v name=value -f file.sql) and that Go code
// runs from the very same embedded text.
//
// Import it under another name, since it shadows database/sql:
//
//	import auditsql "github.com/hookrelay/hookrelay/sql"
//
// A file's parameters are psql variables (:'since', :'project_id'). Query.Run
// turns those variables, found in the file text and never in caller input,
// into positional parameters ($1..$n), so no value is ever spliced into SQL.
package sql

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed *.sql
var files embed.FS

// Query is one audit query file.
type Query struct {
	Name   string   // file name without .sql, e.g. "failed_deliveries"
	File   string   // file name inside sql/, e.g. "failed_deliveries.sql"
	Text   string   // the file's text, exactly as psql runs it
	Params []string // psql variable names, in order of first appearance
}

// Querier is what Run needs: a *pgxpool.Pool, *pgx.Conn and pgx.Tx all
// satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// All returns every audit query, sorted by name. It panics only if an
// embedded file is malformed, which the package's tests rule out.
func All() []Query {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		panic(fmt.Sprintf("auditsql: list embedded files: %v", err))
	}
	slices.Sort(names)
	qs := make([]Query, 0, len(names))
	for _, file := range names {
		q, err := load(file)
		if err != nil {
			panic(err)
		}
		qs = append(qs, q)
	}
	return qs
}

// Get returns the query called name (its file name without .sql).
func Get(name string) (Query, error) {
	file := name + ".sql"
	if !fs.ValidPath(file) || strings.Contains(name, "/") {
		return Query{}, fmt.Errorf("unknown audit query %q", name)
	}
	if _, err := fs.Stat(files, file); err != nil {
		known := make([]string, 0)
		for _, q := range All() {
			known = append(known, q.Name)
		}
		return Query{}, fmt.Errorf("unknown audit query %q (known: %s)", name, strings.Join(known, ", "))
	}
	return load(file)
}

func load(file string) (Query, error) {
	b, err := fs.ReadFile(files, file)
	if err != nil {
		return Query{}, fmt.Errorf("auditsql: read %s: %w", file, err)
	}
	text := string(b)
	_, params, err := bind(text)
	if err != nil {
		return Query{}, fmt.Errorf("auditsql: %s: %w", file, err)
	}
	return Query{Name: strings.TrimSuffix(file, ".sql"), File: file, Text: text, Params: params}, nil
}

// Run executes the query with args, one value per name in q.Params (no more,
// no fewer). Each psql variable of the text becomes a positional parameter;
// the values travel separately from the SQL.
func (q Query) Run(ctx context.Context, db Querier, args map[string]any) (pgx.Rows, error) {
	text, params, err := bind(q.Text)
	if err != nil {
		return nil, fmt.Errorf("audit query %s: %w", q.Name, err)
	}
	for _, k := range slices.Sorted(maps.Keys(args)) {
		if !slices.Contains(params, k) {
			return nil, fmt.Errorf("audit query %s: unknown parameter %q (takes: %s)", q.Name, k, strings.Join(params, ", "))
		}
	}
	values := make([]any, len(params))
	for i, p := range params {
		v, ok := args[p]
		if !ok {
			return nil, fmt.Errorf("audit query %s: missing parameter %q (takes: %s)", q.Name, p, strings.Join(params, ", "))
		}
		values[i] = v
	}
	rows, err := db.Query(ctx, text, values...)
	if err != nil {
		return nil, fmt.Errorf("audit query %s: %w", q.Name, err)
	}
	return rows, nil
}
