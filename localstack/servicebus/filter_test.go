package servicebus

import (
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/seed06bc8277/herald/providers"
)

func msgWith(props amqpMap, sys fields) *message { return &message{appProps: props, props: sys} }

func TestSQLFilter(t *testing.T) {
	target := `"herald-target" IS NULL OR "herald-target" = 'C'`
	cases := []struct {
		expr string
		m    *message
		want bool
	}{
		{target, msgWith(nil, nil), true},
		{target, msgWith(amqpMap{{"herald-target", "C"}}, nil), true},
		{target, msgWith(amqpMap{{"herald-target", "D"}}, nil), false},
		{"1=1", msgWith(nil, nil), true},
		{"1=0", msgWith(nil, nil), false},
		{"n > 5 AND n <= 7", msgWith(amqpMap{{"n", int64(7)}}, nil), true},
		{"n > 5 AND n <= 7", msgWith(amqpMap{{"n", int32(8)}}, nil), false},
		{"NOT (color = 'red')", msgWith(amqpMap{{"color", "blue"}}, nil), true},
		{"color <> 'red'", msgWith(nil, nil), false}, // unknown is not true
		{"color IN ('red', 'blue')", msgWith(amqpMap{{"color", "blue"}}, nil), true},
		{"color NOT IN ('red', 'blue')", msgWith(amqpMap{{"color", "green"}}, nil), true},
		{"sys.Label = 'paint' AND user.[it's] = 'x'", msgWith(amqpMap{{"it's", "x"}},
			fields{nil, nil, nil, "paint"}), true},
		{"sys.MessageId = 'it''s'", msgWith(nil, fields{"it's"}), true},
		{"flag = TRUE", msgWith(amqpMap{{"flag", true}}, nil), true},
		{"x IS NOT NULL", msgWith(amqpMap{{"x", 1.5}}, nil), true},
	}
	for _, tc := range cases {
		f, err := parseSQL(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := f(tc.m); got != tc.want {
			t.Errorf("%s on %v: %v, want %v", tc.expr, tc.m.appProps, got, tc.want)
		}
	}
	for _, bad := range []string{"", "a =", "(a = 1", "a IS 5", "'open", "a ~ 1", "sys.Nope = 1"} {
		if _, err := parseSQL(bad); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestCorrelationFilter(t *testing.T) {
	f := CorrelationFilter{Subject: "s", Properties: map[string]any{"n": 5.0, "k": "v"}}
	if !f.matches(msgWith(amqpMap{{"n", int32(5)}, {"k", "v"}}, fields{nil, nil, nil, "s"})) {
		t.Error("matching message rejected")
	}
	if f.matches(msgWith(amqpMap{{"n", int32(5)}}, fields{nil, nil, nil, "s"})) {
		t.Error("message without k accepted")
	}
	if f.matches(msgWith(amqpMap{{"n", int32(5)}, {"k", "v"}}, fields{nil, nil, nil, "t"})) {
		t.Error("message with another subject accepted")
	}
}

func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]string{"PT1M": "1m0s", "PT1H": "1h0m0s", "P1D": "24h0m0s",
		"P1DT2H3M4.5S": "26h3m4.5s", "PT30S": "30s", "": "0s"} {
		d, err := parseISODuration(in)
		if err != nil || d.String() != want {
			t.Errorf("%q: %v %v, want %s", in, d, err, want)
		}
	}
	for _, bad := range []string{"1m", "P", "PT", "P1H", "PTXS"} {
		if _, err := parseISODuration(bad); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestConfigAndEntityErrors(t *testing.T) {
	if _, err := ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Queues": [
		{"Name": "a", "Properties": {"LockDuration": "PT10M"}}]}]}}`)); !errors.Is(err,
		providers.ErrInvalid) {
		t.Errorf("lock duration of 10 min: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Queues": [
		{"Name": "a"}, {"Name": "A"}]}]}}`)); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("duplicate queue: %v", err)
	}
	if _, err := ParseConfig([]byte(`{`)); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("bad JSON: %v", err)
	}
	em, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = em.CreateSubscription("none", "s", EntityProperties{})
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("subscription of a missing topic: %v", err)
	}
	if err := em.CreateQueue("$bad", EntityProperties{}); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("queue named $bad: %v", err)
	}
	_ = em.CreateTopic("t", EntityProperties{})
	err = em.CreateSubscription("t", "s", EntityProperties{}, Rule{Name: "r", SQL: "a ="})
	if !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("bad rule: %v", err)
	}
	if err := em.DeleteQueue("nope"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("delete missing queue: %v", err)
	}
	if _, err := em.Stats("t"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("stats of a topic: %v", err)
	}
	_ = em.CreateQueue("q", EntityProperties{})
	if err := em.DeleteQueue("Q"); err != nil {
		t.Errorf("delete (case-insensitive): %v", err)
	}
	if _, err := em.Stats("q"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("stats after delete: %v", err)
	}
}

func TestAddAndDeleteRule(t *testing.T) {
	em := start(t, Config{})
	_ = em.CreateTopic("t", EntityProperties{})
	_ = em.CreateSubscription("t", "s", EntityProperties{}, Rule{Name: "only-a", SQL: "k = 'a'"})
	c := client(t, em)
	send(t, c, "t", &azservicebus.Message{ApplicationProperties: map[string]any{"k": "b"}})
	if n, _ := em.Count("t/Subscriptions/s"); n != 0 {
		t.Fatalf("k=b passed the k='a' rule")
	}
	if err := em.AddRule("t", "s", Rule{Name: "b", Correlation: &CorrelationFilter{
		Properties: map[string]any{"k": "b"}}}); err != nil {
		t.Fatal(err)
	}
	send(t, c, "t", &azservicebus.Message{ApplicationProperties: map[string]any{"k": "b"}})
	waitCount(t, em, "t/Subscriptions/s", 1)
	if err := em.DeleteRule("t", "s", "B"); err != nil {
		t.Fatal(err)
	}
	if err := em.DeleteRule("t", "s", "B"); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	send(t, c, "t", &azservicebus.Message{ApplicationProperties: map[string]any{"k": "b"}})
	if n, _ := em.Count("t/Subscriptions/s"); n != 1 {
		t.Fatalf("subscription holds %d messages after the rule was deleted", n)
	}
}

func TestCreateTwiceIsErrExists(t *testing.T) {
	em, _ := New(Config{})
	_ = em.CreateQueue("q", EntityProperties{})
	_ = em.CreateTopic("t", EntityProperties{})
	_ = em.CreateSubscription("t", "s", EntityProperties{})
	for name, err := range map[string]error{
		"queue":            em.CreateQueue("Q", EntityProperties{}),
		"topic over queue": em.CreateTopic("q", EntityProperties{}),
		"subscription":     em.CreateSubscription("t", "S", EntityProperties{}),
	} {
		if !errors.Is(err, ErrExists) || !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("%s: %v, want ErrExists and ErrInvalid", name, err)
		}
	}
}

func TestSendToDeletedQueueFails(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	ctx := ctxT(t)
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.SendMessage(ctx, body("before"), nil); err != nil {
		t.Fatal(err)
	}
	if err := em.DeleteQueue("q"); err != nil {
		t.Fatal(err)
	}
	// The link is detached with amqp:not-found (fatal for the sender); a
	// new sender is refused by CBS with 404 (CodeNotFound).
	err = s.SendMessage(ctx, body("after"), nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound {
		t.Fatalf("send after delete: %v", err)
	}
	s2, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	err = s2.SendMessage(ctx, body("again"), nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Fatalf("second send after delete: %v", err)
	}
}
