package api

import (
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// project is a project as GET /api/projects lists it: one that has webhooks,
// and how many.
type project struct {
	ID       uuid.UUID `json:"id"`
	Webhooks int       `json:"webhooks"`
}

// listProjects lists the projects that have webhooks, for an admin caller
// (a project key is refused by caller.authorize: it knows its project).
// Projects exist only as the project_id of their rows; one without webhooks
// has nothing to show.
func (a *app) listProjects(w http.ResponseWriter, r *http.Request) error {
	rows, err := a.pool.Query(r.Context(), `SELECT project_id, count(*) FROM hookrelay.webhooks
		GROUP BY project_id ORDER BY project_id`)
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (project, error) {
		var p project
		err := row.Scan(&p.ID, &p.Webhooks)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	if list == nil {
		list = []project{}
	}
	writeJSON(w, http.StatusOK, map[string][]project{"projects": list})
	return nil
}
