package providers

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDeadLetterErrorFitsOneKiB(t *testing.T) {
	for _, long := range []string{strings.Repeat("x", 5000), strings.Repeat("é", 3000)} {
		got := DeadLetter{Error: long}.Attributes()[AttrDeadLetterError]
		if len(got) > 1024 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("error attribute of %d bytes (valid UTF-8: %v)", len(got), utf8.ValidString(got))
		}
	}
}

func TestDeadLetterRoundTripsInBothForms(t *testing.T) {
	dl := DeadLetter{Reason: ReasonMaxAttempts, Error: "boom", Attempts: 5, Consumer: "email",
		Time: time.Date(2026, 12, 3, 1, 2, 3, 4, time.UTC)}
	for name, attrs := range map[string]map[string]string{
		"plain": WithDeadLetter(map[string]string{"a": "1"}, dl, 0),
		"packed": WithDeadLetter(map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5",
			"f": "6"}, dl, 10),
	} {
		got, ok := ParseDeadLetter(attrs)
		if !ok || got.Reason != dl.Reason || got.Error != dl.Error || got.Attempts != 5 ||
			got.Consumer != "email" || !got.Time.Equal(dl.Time) {
			t.Errorf("%s: parsed %+v, want %+v", name, got, dl)
		}
		if name == "packed" && len(attrs) > 10 {
			t.Errorf("packed form has %d attributes, the limit is 10", len(attrs))
		}
		for k := range StripDeadLetter(attrs) {
			if strings.HasPrefix(k, "herald-") {
				t.Errorf("%s: StripDeadLetter kept %s", name, k)
			}
		}
	}
}
