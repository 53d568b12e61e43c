package sql_test

import (
	"context"
	"fmt"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	auditsql "github.com/hookrelay/hookrelay/sql"
)

// Each query names the psql variables it takes, in order.
func ExampleAll() {
	for _, q := range auditsql.All() {
		fmt.Println(q.File, q.Params)
	}
	// Output:
	// consistency_check.sql []
	// failed_deliveries.sql [since until project_id]
	// failure_rate_by_endpoint.sql [since until project_id]
	// latency_percentiles.sql [since until project_id]
	// retry_backlog.sql [project_id]
	// stuck_deliveries.sql [older_than project_id]
}

// The consistency check returns no row on a healthy system.
func ExampleQuery_Run() {
	ctx := context.Background()
	db, err := testdb.Create(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Drop()

	q, err := auditsql.Get("consistency_check")
	if err != nil {
		fmt.Println(err)
		return
	}
	rows, err := q.Run(ctx, db.Pool, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rows.Close()
	problems := 0
	for rows.Next() {
		problems++
	}
	if err := rows.Err(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("problems:", problems)
	// Output: problems: 0
}
