package servicebus

import (
	"fmt"
	"strconv"
	"strings"
)

// sqlParser is a recursive-descent parser for the SQL filter subset
// documented at parseSQL. It compiles straight to closures.
type sqlParser struct {
	toks []token
	pos  int
}

type boolExpr = func(*message) bool
type valueExpr = func(*message) any

func (p *sqlParser) peekWord(w string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == 'i' &&
		strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *sqlParser) peekOp(op string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == 'o' && p.toks[p.pos].text == op
}

func (p *sqlParser) or() (boolExpr, error) {
	l, err := p.and()
	for err == nil && p.peekWord("OR") {
		p.pos++
		var r boolExpr
		if r, err = p.and(); err == nil {
			a, b := l, r
			l = func(m *message) bool { return a(m) || b(m) }
		}
	}
	return l, err
}

func (p *sqlParser) and() (boolExpr, error) {
	l, err := p.not()
	for err == nil && p.peekWord("AND") {
		p.pos++
		var r boolExpr
		if r, err = p.not(); err == nil {
			a, b := l, r
			l = func(m *message) bool { return a(m) && b(m) }
		}
	}
	return l, err
}

func (p *sqlParser) not() (boolExpr, error) {
	if p.peekWord("NOT") {
		p.pos++
		e, err := p.not()
		if err != nil {
			return nil, err
		}
		return func(m *message) bool { return !e(m) }, nil
	}
	return p.comparison()
}

func (p *sqlParser) comparison() (boolExpr, error) {
	if p.peekOp("(") {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.peekOp(")") {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return e, nil
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	switch {
	case p.peekWord("IS"):
		p.pos++
		neg := p.peekWord("NOT")
		if neg {
			p.pos++
		}
		if !p.peekWord("NULL") {
			return nil, fmt.Errorf("IS must be followed by [NOT] NULL")
		}
		p.pos++
		return func(m *message) bool { return (l(m) == nil) != neg }, nil
	case p.peekWord("NOT") || p.peekWord("IN"):
		neg := p.peekWord("NOT")
		if neg {
			p.pos++
		}
		return p.in(l, neg)
	case p.pos < len(p.toks) && p.toks[p.pos].kind == 'o' && p.toks[p.pos].text != ")" &&
		p.toks[p.pos].text != "(" && p.toks[p.pos].text != ",":
		op := p.toks[p.pos].text
		p.pos++
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		return compareExpr(op, l, r), nil
	}
	return func(m *message) bool { b, _ := l(m).(bool); return b }, nil
}

func compareExpr(op string, l, r valueExpr) boolExpr {
	ok := map[string]func(int) bool{
		"=": func(c int) bool { return c == 0 }, "<>": func(c int) bool { return c == 0 || c == 2 },
		"!=": func(c int) bool { return c == 0 || c == 2 }, "<": func(c int) bool { return c == -1 },
		"<=": func(c int) bool { return c == -1 || c == 0 }, ">": func(c int) bool { return c == 1 },
		">=": func(c int) bool { return c == 1 || c == 0 },
	}[op]
	if op == "<>" || op == "!=" {
		// Not equal is false when either side is null (unknown).
		return func(m *message) bool {
			c := compare(l(m), r(m))
			return c == -1 || c == 1
		}
	}
	return func(m *message) bool { return ok(compare(l(m), r(m))) }
}

func (p *sqlParser) in(l valueExpr, neg bool) (boolExpr, error) {
	if !p.peekWord("IN") {
		return nil, fmt.Errorf("NOT must be followed by IN here")
	}
	p.pos++
	if !p.peekOp("(") {
		return nil, fmt.Errorf("IN needs a list")
	}
	p.pos++
	var set []valueExpr
	for {
		v, err := p.operand()
		if err != nil {
			return nil, err
		}
		set = append(set, v)
		if p.peekOp(",") {
			p.pos++
			continue
		}
		if !p.peekOp(")") {
			return nil, fmt.Errorf("missing ) after IN list")
		}
		p.pos++
		break
	}
	return func(m *message) bool {
		v := l(m)
		if v == nil {
			return false
		}
		for _, s := range set {
			if compare(v, s(m)) == 0 {
				return !neg
			}
		}
		return neg
	}, nil
}

func (p *sqlParser) operand() (valueExpr, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("expression ends early")
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case 's':
		return func(*message) any { return t.text }, nil
	case 'n':
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", t.text)
		}
		return func(*message) any { return f }, nil
	case 'i':
		switch strings.ToUpper(t.text) {
		case "NULL":
			return func(*message) any { return nil }, nil
		case "TRUE":
			return func(*message) any { return true }, nil
		case "FALSE":
			return func(*message) any { return false }, nil
		}
		name := t.text
		lower := strings.ToLower(name)
		if rest, ok := strings.CutPrefix(lower, "sys."); ok {
			idx, ok := systemProp[rest]
			if !ok {
				return nil, fmt.Errorf("unknown system property %q", name)
			}
			return func(m *message) any { return m.prop(idx) }, nil
		}
		if strings.HasPrefix(lower, "user.") {
			name = name[len("user."):]
		}
		return func(m *message) any { return m.appProps.Get(name) }, nil
	}
	return nil, fmt.Errorf("unexpected %q", t.text)
}
