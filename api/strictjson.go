package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// strictJSON refuses what encoding/json would let through silently: a key
// given twice in one object (the last would win), a top-level key that
// matches a field of dst only when case is ignored ("NAME" for "name"), and a
// string that is not valid UTF-8 (it would be stored with U+FFFD in place of
// the bad bytes). It returns nil for anything else, malformed JSON included:
// the decoder that runs next names those errors.
func strictJSON(raw []byte, dst any) *apiError {
	s := strictScan{dec: json.NewDecoder(bytes.NewReader(raw)), raw: raw, fields: jsonFields(dst)}
	s.dec.UseNumber()
	return s.value("body", true)
}

type strictScan struct {
	broken bool // the JSON is malformed: stop, the decoder will say where
	dec    *json.Decoder
	raw    []byte
	fields map[string]string // lower-cased JSON name → exact JSON name, of dst's fields
}

// value scans one JSON value; path names it in errors, top says it is the
// body itself (whose keys are dst's fields).
func (s *strictScan) value(path string, top bool) *apiError {
	start := s.dec.InputOffset()
	tok, err := s.dec.Token()
	if err != nil {
		s.broken = true
		return nil
	}
	switch t := tok.(type) {
	case string:
		if !utf8.Valid(s.raw[start:s.dec.InputOffset()]) {
			return invalid(path, "must be valid UTF-8")
		}
	case json.Delim:
		switch t {
		case '{':
			return s.object(path, top)
		case '[':
			for i := 0; !s.broken && s.dec.More(); i++ {
				if e := s.value(fmt.Sprintf("%s[%d]", path, i), false); e != nil {
					return e
				}
			}
			_, _ = s.dec.Token() // ]
		}
	}
	return nil
}

func (s *strictScan) object(path string, top bool) *apiError {
	seen := map[string]bool{}
	for !s.broken && s.dec.More() {
		start := s.dec.InputOffset()
		tok, err := s.dec.Token()
		if err != nil {
			s.broken = true
			return nil
		}
		key, _ := tok.(string)
		name := key
		if !top {
			name = path + "." + key
		}
		switch {
		case !utf8.Valid(s.raw[start:s.dec.InputOffset()]):
			return invalid(path, "has a key that is not valid UTF-8")
		case seen[key]:
			return invalid(name, "is given more than once")
		case top && s.fields[strings.ToLower(key)] != "" && s.fields[strings.ToLower(key)] != key:
			return &apiError{Status: http.StatusBadRequest, Code: codeUnknownField,
				Message: fmt.Sprintf("%s: unknown field (field names are case-sensitive: %s)", key, s.fields[strings.ToLower(key)])}
		}
		seen[key] = true
		if e := s.value(name, false); e != nil {
			return e
		}
	}
	_, _ = s.dec.Token() // }
	return nil
}

// jsonFields maps the lower-cased JSON names of dst's struct fields to the
// names themselves; dst is a pointer to a struct.
func jsonFields(dst any) map[string]string {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]string{}
	if t == nil || t.Kind() != reflect.Struct {
		return out
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[strings.ToLower(name)] = name
	}
	return out
}
