package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/textproto"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/safedial"
)

// Limits on webhook fields.
const (
	maxURLLength         = 2048
	maxNameLength        = 200
	maxDescriptionLength = 2000
	maxEnvironmentLength = 200
	maxHeaders           = 20
	maxHeaderName        = 256
	maxHeaderValue       = 1024
	maxEventTypes        = 100
	maxRateLimit         = 100000 // deliveries per second (the column's CHECK)
	maxInFlight          = 10000  // concurrent requests (the column's CHECK)
	urlCheckTimeout      = 3 * time.Second
)

// optional is a JSON field that tells "absent" from "null" from a value, for
// PATCH semantics: Set is false when the field is absent, Null is true when
// it is null.
type optional[T any] struct {
	Set  bool
	Null bool
	V    T
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	if err := json.Unmarshal(b, &o.V); err != nil {
		// Report the field's whole type ("an array of strings"), not the
		// element's; the decoder adds the field name.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &json.UnmarshalTypeError{Value: te.Value, Type: reflect.TypeFor[T](), Offset: te.Offset}
		}
		return err
	}
	return nil
}

// given reports whether the field holds a value (present and not null).
func (o optional[T]) given() bool { return o.Set && !o.Null }

// webhookInput is the body of POST and PATCH /webhooks. In POST, name, url
// and event_types are required; in PATCH, absent fields are left as they are
// and application_id and environment_name may be null to clear the filter.
type webhookInput struct {
	Name            optional[string]            `json:"name"`
	URL             optional[string]            `json:"url"`
	EventTypes      optional[[]string]          `json:"event_types"`
	ApplicationID   optional[string]            `json:"application_id"`
	EnvironmentName optional[string]            `json:"environment_name"`
	Headers         optional[map[string]string] `json:"headers"`
	Description     optional[string]            `json:"description"`
	IsActive        optional[bool]              `json:"is_active"`
	RateLimit       optional[int]               `json:"rate_limit"`
	MaxInFlight     optional[int]               `json:"max_in_flight"`
}

// validator checks webhook input against the API's configuration.
type validator struct {
	allowPrivate bool
	eventTypes   map[string]bool
	// reservedPrefixes are lower-case prefixes of header names hookrelay sets
	// itself ("x-agenta-", "webhook-").
	reservedPrefixes []string
}

// reservedHeaders are header names (lower case) a webhook may not set:
// hookrelay sets them, they belong to the transport (hop-by-hop, encodings,
// HTTP/2 negotiation), or a receiver should never get them from
// configuration (proxy credentials, cookies).
var reservedHeaders = []string{
	"content-type", "content-length", "host", "user-agent", "connection", "transfer-encoding",
	"te", "trailer", "upgrade", "keep-alive", "proxy-connection", "expect",
	"proxy-authorization", "proxy-authenticate", "cookie", "set-cookie",
	"content-encoding", "accept-encoding", "http2-settings",
}

func newValidator(allowPrivate bool, eventTypes []string, headerPrefix string) validator {
	v := validator{allowPrivate: allowPrivate, eventTypes: map[string]bool{"*": true}}
	for _, t := range append(eventTypes, deliver.OperationalEventTypes()...) {
		v.eventTypes[t] = true
	}
	headerPrefix = cmp.Or(headerPrefix, httpsend.DefaultHeaderPrefix)
	v.reservedPrefixes = []string{strings.ToLower(headerPrefix) + "-", "webhook-"}
	return v
}

// webhookFields is a webhook's user-settable state.
type webhookFields struct {
	Name            string
	URL             string
	EventTypes      []string
	ApplicationID   *uuid.UUID
	EnvironmentName *string
	Headers         map[string]string
	Description     string
	IsActive        bool
	RateLimit       *int
	MaxInFlight     *int
}

// webhookPatch is validated webhook input: the changes it makes, in order.
type webhookPatch []func(*webhookFields)

// applyTo makes the changes to f.
func (p webhookPatch) applyTo(f *webhookFields) {
	for _, set := range p {
		set(f)
	}
}

// check validates in and returns the changes it asks for. With create, the
// required fields must be present. It returns an *apiError naming the first
// bad field.
func (v validator) check(ctx context.Context, in webhookInput, create bool) (webhookPatch, error) {
	if create {
		for _, req := range []struct {
			name string
			set  bool
		}{{"name", in.Name.given()}, {"url", in.URL.given()}, {"event_types", in.EventTypes.given()}} {
			if !req.set {
				return nil, invalid(req.name, "is required")
			}
		}
	}
	for _, nn := range []struct {
		name string
		null bool
	}{{"name", in.Name.Null}, {"url", in.URL.Null}, {"event_types", in.EventTypes.Null},
		{"headers", in.Headers.Null}, {"description", in.Description.Null}, {"is_active", in.IsActive.Null}} {
		if nn.null {
			return nil, invalid(nn.name, "must not be null")
		}
	}
	var p webhookPatch
	if in.Name.Set {
		if err := checkText("name", in.Name.V, 1, maxNameLength); err != nil {
			return nil, err
		}
		name := strings.TrimSpace(in.Name.V)
		p = append(p, func(f *webhookFields) { f.Name = name })
	}
	if in.URL.Set {
		if err := v.checkURL(ctx, in.URL.V); err != nil {
			return nil, err
		}
		p = append(p, func(f *webhookFields) { f.URL = in.URL.V })
	}
	if in.EventTypes.Set {
		types, err := v.checkEventTypes(in.EventTypes.V)
		if err != nil {
			return nil, err
		}
		p = append(p, func(f *webhookFields) { f.EventTypes = types })
	}
	if in.ApplicationID.Set {
		var app *uuid.UUID
		if !in.ApplicationID.Null {
			id, err := uuid.Parse(in.ApplicationID.V)
			if err != nil {
				return nil, invalid("application_id", "must be a UUID or null")
			}
			app = &id
		}
		p = append(p, func(f *webhookFields) { f.ApplicationID = app })
	}
	if in.EnvironmentName.Set {
		var env *string
		if !in.EnvironmentName.Null {
			if err := checkText("environment_name", in.EnvironmentName.V, 1, maxEnvironmentLength); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(in.EnvironmentName.V)
			env = &name
		}
		p = append(p, func(f *webhookFields) { f.EnvironmentName = env })
	}
	if in.Headers.Set {
		if err := v.checkHeaders(in.Headers.V); err != nil {
			return nil, err
		}
		p = append(p, func(f *webhookFields) { f.Headers = in.Headers.V })
	}
	if in.Description.Set {
		if err := checkText("description", in.Description.V, 0, maxDescriptionLength); err != nil {
			return nil, err
		}
		p = append(p, func(f *webhookFields) { f.Description = in.Description.V })
	}
	if in.IsActive.Set {
		p = append(p, func(f *webhookFields) { f.IsActive = in.IsActive.V })
	}
	for _, lim := range []struct {
		name string
		in   optional[int]
		max  int
		set  func(*webhookFields, *int)
	}{
		{"rate_limit", in.RateLimit, maxRateLimit, func(f *webhookFields, v *int) { f.RateLimit = v }},
		{"max_in_flight", in.MaxInFlight, maxInFlight, func(f *webhookFields, v *int) { f.MaxInFlight = v }},
	} {
		if !lim.in.Set {
			continue
		}
		var v *int
		if !lim.in.Null {
			if lim.in.V < 1 || lim.in.V > lim.max {
				return nil, invalid(lim.name, "must be between 1 and %d, or null for no limit", lim.max)
			}
			v = &lim.in.V
		}
		p = append(p, func(f *webhookFields) { lim.set(f, v) })
	}
	return p, nil
}

// checkText checks that s, trimmed, has between min and max characters and
// holds no control characters other than tab and newline (Postgres refuses
// NUL), and no invisible formatting characters (bidi overrides and isolates,
// zero-width characters) that make a name read other than it is.
func checkText(field, s string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(strings.TrimSpace(s))
	if n < minLen {
		if minLen == 1 {
			return invalid(field, "must not be empty")
		}
		return invalid(field, "must have at least %d characters", minLen)
	}
	if utf8.RuneCountInString(s) > maxLen {
		return invalid(field, "must have at most %d characters", maxLen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' }) {
		return invalid(field, "must not contain control characters")
	}
	if strings.ContainsFunc(s, invisible) {
		return invalid(field, "must not contain invisible formatting characters (bidi controls, zero-width characters)")
	}
	return nil
}

// invisible reports format characters (Unicode category Cf: bidi embeddings,
// overrides and isolates, zero-width space and joiners, word joiner, BOM)
// and the bidi marks, which display as nothing.
func invisible(r rune) bool { return unicode.Is(unicode.Cf, r) }

// checkURL checks a webhook URL: absolute http(s), at most maxURLLength
// bytes, no credentials, no IPv4 address in a non-canonical form (numericHost),
// and not a private address unless allowed.
func (v validator) checkURL(ctx context.Context, raw string) error {
	if len(raw) > maxURLLength {
		return invalid("url", "must have at most %d characters", maxURLLength)
	}
	if raw == "" || strings.ContainsFunc(raw, unicode.IsControl) || strings.ContainsFunc(raw, unicode.IsSpace) {
		return invalid("url", "must be an absolute http or https URL")
	}
	if host, ok := numericHost(raw); ok {
		return invalid("url", "host %q is an IPv4 address in a shorthand, decimal, hex or octal form, which parsers read differently; write it as four decimal numbers (like 203.0.113.10)", host)
	}
	ctx, cancel := context.WithTimeout(ctx, urlCheckTimeout)
	defer cancel()
	err := safedial.CheckURL(ctx, raw, v.allowPrivate, nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, safedial.ErrForbidden):
		return invalid("url", "must not point at a private, loopback or internal address (%s)", detail(err, safedial.ErrForbidden))
	default:
		return invalid("url", "must be an absolute http or https URL without credentials (%s)", detail(err, safedial.ErrInvalidURL))
	}
}

// detail is the part of err's message after sentinel's, for error messages.
func detail(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
		return msg[i+len(sentinel.Error())+2:]
	}
	return msg
}

// checkEventTypes checks the subscription list and returns it without duplicates.
func (v validator) checkEventTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, invalid("event_types", "must not be empty")
	}
	if len(types) > maxEventTypes {
		return nil, invalid("event_types", "must have at most %d entries", maxEventTypes)
	}
	out := make([]string, 0, len(types))
	for _, t := range types {
		if !v.eventTypes[t] {
			return nil, invalid("event_types", "%q is not a known event type (known: %s)", t, v.knownTypes())
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// knownTypes lists the event types a webhook may subscribe to, sorted.
func (v validator) knownTypes() string {
	types := make([]string, 0, len(v.eventTypes))
	for t := range v.eventTypes {
		types = append(types, t)
	}
	slices.Sort(types)
	return strings.Join(types, ", ")
}

// checkHeaders checks a webhook's custom headers: at most maxHeaders, valid
// names that hookrelay does not set itself, and values without control
// characters of at most maxHeaderValue bytes. Values are never echoed in
// messages: they may be credentials.
func (v validator) checkHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return invalid("headers", "must have at most %d entries", maxHeaders)
	}
	seen := make(map[string]bool, len(h))
	for name, value := range h {
		if !validHeaderName(name) {
			return invalid("headers", "%q is not a valid header name", name)
		}
		lower := strings.ToLower(name)
		if slices.Contains(reservedHeaders, lower) || slices.ContainsFunc(v.reservedPrefixes, func(p string) bool {
			return strings.HasPrefix(lower, p)
		}) {
			return invalid("headers", "%s is reserved: hookrelay sets it", textproto.CanonicalMIMEHeaderKey(name))
		}
		if seen[lower] {
			return invalid("headers", "%s is given more than once", textproto.CanonicalMIMEHeaderKey(name))
		}
		seen[lower] = true
		if len(value) > maxHeaderValue {
			return invalid("headers", "value of %s must have at most %d bytes", name, maxHeaderValue)
		}
		if strings.ContainsFunc(value, func(r rune) bool { return r != '\t' && (r < 0x20 || r == 0x7f) }) {
			return invalid("headers", "value of %s must not contain control characters", name)
		}
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token of sane length.
func validHeaderName(name string) bool {
	if name == "" || len(name) > maxHeaderName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
