package sql

import (
	"fmt"
	"strconv"
	"strings"
)

// bind rewrites the psql variables of text (:'name' and :name) into
// positional parameters $1..$n and returns the rewritten text and the
// variable names in order of first appearance; a name used twice keeps its
// number. Like psql, it leaves string literals, quoted identifiers, dollar
// quotes, comments and :: casts alone.
func bind(text string) (string, []string, error) {
	var (
		out    strings.Builder
		params []string
		index  = map[string]int{}
	)
	use := func(name string) {
		n, ok := index[name]
		if !ok {
			params = append(params, name)
			n = len(params)
			index[name] = n
		}
		out.WriteString("$" + strconv.Itoa(n))
	}
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			out.WriteString(text[i : i+end])
			i += end
		case strings.HasPrefix(text[i:], "/*"):
			end, err := blockCommentEnd(text, i)
			if err != nil {
				return "", nil, err
			}
			out.WriteString(text[i:end])
			i = end
		case c == '\'':
			end, err := quotedEnd(text, i, '\'', escapeStringAt(text, i))
			if err != nil {
				return "", nil, err
			}
			out.WriteString(text[i:end])
			i = end
		case c == '"':
			end, err := quotedEnd(text, i, '"', false)
			if err != nil {
				return "", nil, err
			}
			out.WriteString(text[i:end])
			i = end
		case c == '$' && dollarTag(text, i) != "":
			tag := dollarTag(text, i)
			closing := strings.Index(text[i+len(tag):], tag)
			if closing < 0 {
				return "", nil, fmt.Errorf("unterminated dollar-quoted string at offset %d", i)
			}
			end := i + len(tag) + closing + len(tag)
			out.WriteString(text[i:end])
			i = end
		case c == ':' && strings.HasPrefix(text[i:], "::"):
			out.WriteString("::")
			i += 2
		case c == ':' && strings.HasPrefix(text[i:], ":'"):
			end := strings.IndexByte(text[i+2:], '\'')
			if end < 0 {
				return "", nil, fmt.Errorf("unterminated :'variable' at offset %d", i)
			}
			name := text[i+2 : i+2+end]
			if !validName(name) {
				return "", nil, fmt.Errorf("invalid psql variable name %q at offset %d", name, i)
			}
			use(name)
			i += 2 + end + 1
		case c == ':' && strings.HasPrefix(text[i:], `:"`):
			return "", nil, fmt.Errorf(`psql identifier variable (:"name") at offset %d is not supported`, i)
		case c == ':' && i+1 < len(text) && isNameStart(text[i+1]):
			j := i + 1
			for j < len(text) && isNameChar(text[j]) {
				j++
			}
			use(text[i+1 : j])
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String(), params, nil
}

// blockCommentEnd returns the offset just past the (possibly nested) block
// comment that starts at i.
func blockCommentEnd(text string, i int) (int, error) {
	depth := 0
	for j := i; j+1 < len(text); j++ {
		switch text[j : j+2] {
		case "/*":
			depth++
			j++
		case "*/":
			depth--
			j++
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated block comment at offset %d", i)
}

// quotedEnd returns the offset just past the quoted token that starts at i;
// a doubled quote stands for itself, and with backslash a backslash escapes
// the next byte (E'...' strings).
func quotedEnd(text string, i int, quote byte, backslash bool) (int, error) {
	for j := i + 1; j < len(text); j++ {
		switch {
		case backslash && text[j] == '\\':
			j++
		case text[j] == quote && j+1 < len(text) && text[j+1] == quote:
			j++
		case text[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated %c-quoted token at offset %d", quote, i)
}

// escapeStringAt reports whether the quote at i opens an E'...' string.
func escapeStringAt(text string, i int) bool {
	if i == 0 || (text[i-1] != 'E' && text[i-1] != 'e') {
		return false
	}
	return i == 1 || !isNameChar(text[i-2])
}

// dollarTag returns the $tag$ that opens a dollar-quoted string at i, or "".
func dollarTag(text string, i int) string {
	if i > 0 && isNameChar(text[i-1]) {
		return "" // part of an identifier such as a$b
	}
	j := i + 1
	if j < len(text) && !isNameStart(text[j]) && text[j] != '$' {
		return "" // $1 is a parameter, not a quote
	}
	for j < len(text) && isNameChar(text[j]) {
		j++
	}
	if j < len(text) && text[j] == '$' {
		return text[i : j+1]
	}
	return ""
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }
