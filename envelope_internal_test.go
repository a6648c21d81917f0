package herald

import (
	"testing"
	"time"
)

// TestParseTime checks the direct reader of herald's own time form against
// time.Parse, on that form and on the forms it hands over.
func TestParseTime(t *testing.T) {
	for _, v := range []string{
		"2026-12-04T08:15:30Z",
		"2026-12-04T08:15:30.5Z",
		"2026-12-04T08:15:30.123456789Z",
		"2026-12-04T08:15:30.000001Z",
		"2024-02-29T23:59:59.999999999Z",
		"2026-12-04T08:15:30+01:00",
		"2026-12-04T08:15:30.25-07:30",
		"2023-02-29T00:00:00Z",
		"2026-13-01T00:00:00Z",
		"2026-12-32T00:00:00Z",
		"2026-12-04T24:00:00Z",
		"2026-12-04T08:60:00Z",
		"2026-12-04T08:15:60Z",
		"2026-12-04T08:15:30.Z",
		"2026-12-04T08:15:30,5Z",
		"2026-12-04T08:15:30.1234567890Z",
		"2026-12-04T08:1a:30Z",
		"2026-12-04 08:15:30Z",
		"",
		"yesterday",
	} {
		got, gotErr := parseTime(v)
		want, wantErr := time.Parse(time.RFC3339Nano, v)
		if (gotErr != nil) != (wantErr != nil) {
			t.Errorf("parseTime(%q): err = %v, time.Parse: %v", v, gotErr, wantErr)
			continue
		}
		if !got.Equal(want) || got.Location().String() != want.Location().String() {
			t.Errorf("parseTime(%q) = %v, time.Parse = %v", v, got, want)
		}
	}
}

// FuzzParseTime holds parseTime to time.Parse on any input.
func FuzzParseTime(f *testing.F) {
	f.Add("2026-12-04T08:15:30.123456789Z")
	f.Add("2026-12-04T08:15:30Z")
	f.Add("2026-02-30T08:15:30Z")
	f.Fuzz(func(t *testing.T, v string) {
		got, gotErr := parseTime(v)
		want, wantErr := time.Parse(time.RFC3339Nano, v)
		if (gotErr != nil) != (wantErr != nil) || (gotErr == nil && !got.Equal(want)) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse = %v, %v", v, got, gotErr, want, wantErr)
		}
	})
}
