package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// pageNames are the pages, each templates/<name>.html inside
// templates/layout.html, with the parts of templates/lists.html and forms.html.
var pageNames = []string{"login", "projects", "webhooks", "webhook", "deliveries", "overview", "delivery", "error"}

// pages are the parsed page templates by name.
type pages map[string]*template.Template

func mustParsePages() pages {
	p := pages{}
	for _, name := range pageNames {
		p[name] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(assets, "templates/layout.html", "templates/lists.html", "templates/forms.html",
				"templates/"+name+".html"))
	}
	return p
}

// view is what the layout renders: the page's own data in Data.
type view struct {
	Protected bool
	Project   string // the project in view, for the navigation; empty on the picker
	Data      any
}

// render writes page name with data, in a view that knows the project.
func (s *server) renderIn(w http.ResponseWriter, status int, name, project string, data any) {
	var b bytes.Buffer
	if err := s.pages[name].Execute(&b, view{Protected: s.cfg.Protected, Project: project, Data: data}); err != nil {
		s.log.Error("ui: render page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (s *server) render(w http.ResponseWriter, status int, name string, data any) {
	s.renderIn(w, status, name, "", data)
}

// fail answers a page whose API call failed: a refused credential asks to
// sign in again, an API error shows its status and message, anything else is
// logged and shown as a 500.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		s.log.ErrorContext(r.Context(), "ui: page failed", "path", r.URL.Path, "err", err)
		e = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	if e.Status == http.StatusUnauthorized && s.cfg.Protected {
		s.signInAgain(w, r)
		return
	}
	s.render(w, e.Status, "error", e)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"when":     when,
	"statuses": func() []string { return []string{"pending", "delivered", "failed", "skipped"} },
	"pretty":   pretty,
	"chart":    chart,
	"list":     func(xs ...stats) []stats { return xs },
	"div":      func(a, b int) int { return a / b },
	"ratio": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f %%", 100**f)
	},
	"ms": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return fmt.Sprintf("%.0f ms", *f)
	},
	"age": func(t *time.Time, now time.Time) string {
		if t == nil {
			return "—"
		}
		return now.Sub(*t).Round(time.Second).String()
	},
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
}

// when renders a time as a <time> element in UTC; the page's script shows it
// in the viewer's local time and keeps the UTC value as its title. A nil or
// zero time is a dash.
func when(v any) template.HTML {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "—"
	}
	u := t.UTC()
	// Both strings are digits and fixed punctuation: nothing to escape.
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
		u.Format(time.RFC3339Nano), u.Format("2006-01-02 15:04:05 UTC"), u.Format("2006-01-02 15:04:05 UTC")))
}

// pretty indents JSON for reading; anything that is not JSON is shown as it is.
func pretty(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
