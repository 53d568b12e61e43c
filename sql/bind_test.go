package sql

import (
	"slices"
	"strings"
	"testing"
)

func TestBind_RewritesPsqlVariablesAndLeavesEverythingElse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
		params         []string
	}{
		{"quoted variable", "SELECT :'since'::timestamptz", "SELECT $1::timestamptz", []string{"since"}},
		{"bare variable", "SELECT 1 LIMIT :lim", "SELECT 1 LIMIT $1", []string{"lim"}},
		{"repeat keeps its number", "WHERE a = :'p' AND b = :x OR c = :'p'", "WHERE a = $1 AND b = $2 OR c = $1", []string{"p", "x"}},
		{"cast is not a variable", "SELECT now()::date", "SELECT now()::date", nil},
		{"string literal", "SELECT ':''nope'' :nope', :'yes'", "SELECT ':''nope'' :nope', $1", []string{"yes"}},
		{"escape string", `SELECT E'it\'s :nope', :yes`, `SELECT E'it\'s :nope', $1`, []string{"yes"}},
		{"quoted identifier", `SELECT 1 AS ":nope", :yes`, `SELECT 1 AS ":nope", $1`, []string{"yes"}},
		{"line comment", "-- :'nope' :nope\nSELECT :yes", "-- :'nope' :nope\nSELECT $1", []string{"yes"}},
		{"nested block comment", "/* :a /* :b */ :c */ SELECT :yes", "/* :a /* :b */ :c */ SELECT $1", []string{"yes"}},
		{"dollar quote", "SELECT $f$ :nope $f$, $$ :nope $$, :yes", "SELECT $f$ :nope $f$, $$ :nope $$, $1", []string{"yes"}},
		{"json operators", "SELECT data->'a'->>'b' FROM t WHERE x = :'v'", "SELECT data->'a'->>'b' FROM t WHERE x = $1", []string{"v"}},
		{"colon before digit", "SELECT '12:00'::time, 1 :2", "SELECT '12:00'::time, 1 :2", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, params, err := bind(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want || !slices.Equal(params, c.params) {
				t.Errorf("bind(%q) = %q %v, want %q %v", c.in, got, params, c.want, c.params)
			}
		})
	}
}

func TestBind_RejectsMalformedText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"SELECT 'open":        "unterminated",
		"SELECT :'open":       "unterminated :'variable'",
		"SELECT :'bad name'":  "invalid psql variable name",
		`SELECT :"ident"`:     "not supported",
		"SELECT /* open":      "unterminated block comment",
		"SELECT $q$ open":     "unterminated dollar-quoted",
		`SELECT "open`:        "unterminated",
		"SELECT :'x-y'::text": "invalid psql variable name",
	} {
		if _, _, err := bind(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bind(%q) error = %v, want one containing %q", in, err, want)
		}
	}
}
