package servicebus

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/seed06bc8277/herald/providers"
)

// Rule is a subscription rule. A message is copied to a subscription when
// any of its rules matches; a subscription created without rules gets
// one TrueFilter rule named "$Default", as in Service Bus.
//
// Exactly one of SQL and Correlation may be set; neither is a TrueFilter.
type Rule struct {
	Name string
	// SQL is a SQL filter in the subset described at parseSQL.
	SQL string
	// Correlation matches system and application properties by equality.
	Correlation *CorrelationFilter

	match func(*message) bool
}

// CorrelationFilter matches when every non-empty field equals the
// message's property of that name and every entry of Properties equals
// the application property with that key (numbers compare by value).
type CorrelationFilter struct {
	CorrelationID, MessageID, To, ReplyTo, Subject string
	SessionID, ReplyToSessionID, ContentType       string
	Properties                                     map[string]any
}

// compile prepares the rule for matching.
func (r *Rule) compile() error {
	switch {
	case r.SQL != "" && r.Correlation != nil:
		return fmt.Errorf("servicebus: rule %q: both SQL and correlation filter: %w",
			r.Name, providers.ErrInvalid)
	case r.SQL != "":
		f, err := parseSQL(r.SQL)
		if err != nil {
			return fmt.Errorf("servicebus: rule %q: %w", r.Name, err)
		}
		r.match = f
	case r.Correlation != nil:
		c := *r.Correlation
		r.match = c.matches
	default:
		r.match = func(*message) bool { return true }
	}
	return nil
}

func (s *subscription) matches(m *message) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range s.rules {
		if s.rules[i].match(m) {
			return true
		}
	}
	return false
}

// systemProp maps Service Bus system property names (lower case) to the
// AMQP properties field index.
var systemProp = map[string]int{
	"messageid": 0, "to": 2, "label": 3, "subject": 3, "replyto": 4,
	"correlationid": 5, "contenttype": 6, "sessionid": 10, "replytosessionid": 12,
}

func (c *CorrelationFilter) matches(m *message) bool {
	sys := []struct {
		want string
		idx  int
	}{
		{c.MessageID, 0}, {c.To, 2}, {c.Subject, 3}, {c.ReplyTo, 4}, {c.CorrelationID, 5},
		{c.ContentType, 6}, {c.SessionID, 10}, {c.ReplyToSessionID, 12},
	}
	for _, f := range sys {
		if f.want != "" && fmt.Sprint(m.prop(f.idx)) != f.want {
			return false
		}
	}
	for k, want := range c.Properties {
		got, ok := m.appProps.Lookup(k)
		if !ok || compare(got, normalize(want)) != 0 {
			return false
		}
	}
	return true
}

// normalize turns numbers into float64 so that int32 5 equals 5.0.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case symbol:
		return string(x)
	}
	return v
}

// compare returns -1, 0 or 1, or 2 when the values are not comparable
// (different types or null), which every comparison treats as false.
func compare(a, b any) int {
	a, b = normalize(a), normalize(b)
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	case bool:
		if y, ok := b.(bool); ok && x == y {
			return 0
		} else if ok {
			return 1
		}
	}
	return 2
}

// parseSQL compiles a SQL filter expression (Rule.SQL). The subset: OR, AND, NOT,
// parentheses; =, <>, !=, <, <=, >, >=; IS [NOT] NULL; [NOT] IN (...);
// string ('it”s'), number, TRUE, FALSE and NULL literals; property names
// plain, "double-quoted" or [bracketed], with the prefixes sys. (MessageId,
// CorrelationId, Label, Subject, To, ReplyTo, ContentType, SessionId,
// ReplyToSessionId) and user. (application properties, the default).
// A comparison with a missing property is false, so that
// `"herald-target" IS NULL OR "herald-target" = 'C'` passes untargeted
// messages and those targeted at C.
func parseSQL(expr string) (func(*message) bool, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, fmt.Errorf("sql filter: %v: %w", err, providers.ErrInvalid)
	}
	p := &sqlParser{toks: toks}
	f, err := p.or()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	if err != nil {
		return nil, fmt.Errorf("sql filter: %v: %w", err, providers.ErrInvalid)
	}
	return f, nil
}

type token struct {
	kind byte // 'i' identifier, 's' string, 'n' number, 'o' operator or punctuation
	text string
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; ; j++ {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string")
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			out, i = append(out, token{'s', b.String()}), j+1
		case c == '"' || c == '[':
			end := byte('"')
			if c == '[' {
				end = ']'
			}
			j := strings.IndexByte(s[i+1:], end)
			if j < 0 {
				return nil, fmt.Errorf("unterminated name")
			}
			out, i = append(out, token{'i', s[i+1 : i+1+j]}), i+j+2
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out, i = append(out, token{'n', s[i:j]}), j
		case unicode.IsLetter(rune(c)) || c == '_' || c == '$':
			j := i + 1
			for j < len(s) && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])) ||
				s[j] == '_' || s[j] == '.' || s[j] == '$') {
				j++
			}
			name := s[i:j]
			if strings.HasSuffix(name, ".") && j < len(s) && (s[j] == '"' || s[j] == '[') {
				// user.[name] or sys."name": the prefix joins the quoted name.
				end := byte('"')
				if s[j] == '[' {
					end = ']'
				}
				k := strings.IndexByte(s[j+1:], end)
				if k < 0 {
					return nil, fmt.Errorf("unterminated name")
				}
				name, j = name+s[j+1:j+1+k], j+k+2
			}
			out, i = append(out, token{'i', name}), j
		case strings.HasPrefix(s[i:], "<>") || strings.HasPrefix(s[i:], "!=") ||
			strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">="):
			out, i = append(out, token{'o', s[i : i+2]}), i+2
		case strings.ContainsRune("=<>(),", rune(c)):
			out, i = append(out, token{'o', s[i : i+1]}), i+1
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return out, nil
}
