package ui

import (
	"html/template"
	"net/http"
	"net/url"
)

// filterKeys are the query parameters of a delivery list that the pages pass
// on to the API as they are (limit is the page size, not in the form): the
// API validates them and names the one at fault.
var filterKeys = []string{"status", "event_type", "event_id", "id", "since", "until", "limit"}

// deliveryFilter is a delivery list's filters and page, from the page's
// query string.
type deliveryFilter struct {
	Values url.Values // the filters set, of filterKeys
	Cursor string
}

func filterOf(r *http.Request) deliveryFilter {
	q := r.URL.Query()
	f := deliveryFilter{Values: url.Values{}, Cursor: q.Get("cursor")}
	for _, k := range filterKeys {
		if v := q.Get(k); v != "" {
			f.Values.Set(k, v)
		}
	}
	return f
}

// Get is the value of filter k, for the form.
func (f deliveryFilter) Get(k string) string { return f.Values.Get(k) }

// Query is the filters' query string, without the page: the first page's
// link. It is url.Values' encoding, safe in an href as it is.
func (f deliveryFilter) Query() template.URL { return template.URL(f.Values.Encode()) }

// NextQuery is the query string of the page after cursor.
func (f deliveryFilter) NextQuery(cursor string) template.URL {
	v := url.Values{"cursor": {cursor}}
	for k, vs := range f.Values {
		v[k] = vs
	}
	return template.URL(v.Encode())
}

// apiPath is the API's list path with the filters and the page.
func (f deliveryFilter) apiPath(path string) string {
	if f.Cursor == "" {
		if len(f.Values) == 0 {
			return path
		}
		return path + "?" + string(f.Query())
	}
	return path + "?" + string(f.NextQuery(f.Cursor))
}

// deliveryList is a page of deliveries as the pages show it.
type deliveryList struct {
	Project    string
	Webhook    string // the webhook whose list this is; empty for the project's
	Filter     deliveryFilter
	Deliveries []delivery
	NextCursor string
	Names      map[string]string // webhook names by id, for the project's list
}

// loadDeliveries fills l with the page of the API's list at path.
func (s *server) loadDeliveries(r *http.Request, cred, path string, l *deliveryList) error {
	var page deliveryPage
	if err := s.get(r, cred, l.Filter.apiPath(path), &page); err != nil {
		return err
	}
	l.Deliveries = page.Deliveries
	if page.NextCursor != nil {
		l.NextCursor = *page.NextCursor
	}
	return nil
}

// projectDeliveriesPage lists the deliveries of every webhook of the
// project, with the same filters as a webhook's list.
func (s *server) projectDeliveriesPage(w http.ResponseWriter, r *http.Request, cred string) {
	project := r.PathValue("project")
	l := deliveryList{Project: project, Filter: filterOf(r), Names: map[string]string{}}
	var hooks struct {
		Webhooks []webhook `json:"webhooks"`
	}
	if err := s.get(r, cred, projectPath(project, "webhooks"), &hooks); err != nil {
		s.fail(w, r, err)
		return
	}
	for _, wh := range hooks.Webhooks {
		l.Names[wh.ID] = wh.Name
	}
	if err := s.loadDeliveries(r, cred, projectPath(project, "deliveries"), &l); err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderIn(w, http.StatusOK, "deliveries", project, l)
}
