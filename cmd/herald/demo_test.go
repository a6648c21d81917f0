package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	store := filepath.Join(t.TempDir(), "idem.db")
	err := runDemo(context.Background(), &out, demoOptions{url: "mem://", orders: 20, store: store,
		timeout: time.Minute})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`published 20 OrderPlaced events \(4 of them twice\)`),
		regexp.MustCompile(`email\s+19\s+4\s+5\s+2`),
		regexp.MustCompile(`warehouse\s+20\s+4\s+0\s+1`),
		regexp.MustCompile(`analytics\s+20\s+4\s+0\s+1`),
		regexp.MustCompile(`email\s+order-7/placed\s+permanent\s+attempt 1\s+.*no email address`),
		regexp.MustCompile(`warehouse\s+legacy-1\s+malformed`),
		regexp.MustCompile(`effects that ran twice: 0`),
	} {
		if !want.MatchString(got) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "order-7/placed  max-attempts") {
		t.Errorf("the poison order was retried instead of dead-lettered at once:\n%s", got)
	}
}
