package servicebus

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// Config is the emulator's configuration. Its JSON form is the Config.json
// of Microsoft's Service Bus emulator, so the same file configures both;
// the fields tagged "-" exist only in Go.
type Config struct {
	UserConfig UserConfig `json:"UserConfig"`
	// MaxMessageSize is the largest message accepted, in bytes; 0 means
	// DefaultMaxMessageSize (1 MiB).
	MaxMessageSize int `json:"-"`
	// Logger receives connection-level debug logs; nil discards them.
	Logger *slog.Logger `json:"-"`
}

// UserConfig lists the namespaces. The emulator serves one namespace:
// the entities of every listed namespace are merged into it.
type UserConfig struct {
	Namespaces []NamespaceConfig `json:"Namespaces"`
	Logging    json.RawMessage   `json:"Logging,omitempty"` // accepted, ignored
}

// NamespaceConfig holds a namespace's queues and topics. Name is accepted
// and ignored: clients reach the emulator by its address.
type NamespaceConfig struct {
	Name   string        `json:"Name"`
	Queues []QueueConfig `json:"Queues"`
	Topics []TopicConfig `json:"Topics"`
}

// QueueConfig is one queue.
type QueueConfig struct {
	Name       string           `json:"Name"`
	Properties EntityJSONConfig `json:"Properties"`
}

// TopicConfig is one topic with its subscriptions.
type TopicConfig struct {
	Name          string               `json:"Name"`
	Properties    EntityJSONConfig     `json:"Properties"`
	Subscriptions []SubscriptionConfig `json:"Subscriptions"`
}

// SubscriptionConfig is one subscription with its rules.
type SubscriptionConfig struct {
	Name       string           `json:"Name"`
	Properties EntityJSONConfig `json:"Properties"`
	Rules      []RuleConfig     `json:"Rules"`
}

// EntityJSONConfig holds the entity properties of Config.json. Durations
// are ISO 8601 (PT1M, PT1H, P14D). Properties not listed in
// EntityProperties (duplicate detection, forwarding) are accepted and
// ignored.
type EntityJSONConfig struct {
	LockDuration                        string `json:"LockDuration,omitempty"`
	MaxDeliveryCount                    int    `json:"MaxDeliveryCount,omitempty"`
	DefaultMessageTimeToLive            string `json:"DefaultMessageTimeToLive,omitempty"`
	DeadLetteringOnMessageExpiration    bool   `json:"DeadLetteringOnMessageExpiration,omitempty"`
	RequiresSession                     bool   `json:"RequiresSession,omitempty"`
	RequiresDuplicateDetection          bool   `json:"RequiresDuplicateDetection,omitempty"`
	DuplicateDetectionHistoryTimeWindow string `json:"DuplicateDetectionHistoryTimeWindow,omitempty"`
	ForwardTo                           string `json:"ForwardTo,omitempty"`
	ForwardDeadLetteredMessagesTo       string `json:"ForwardDeadLetteredMessagesTo,omitempty"`
}

// RuleConfig is one subscription rule; FilterType is "Sql" or
// "Correlation". Actions are accepted and ignored.
type RuleConfig struct {
	Name       string `json:"Name"`
	Properties struct {
		FilterType        string `json:"FilterType"`
		CorrelationFilter *struct {
			ContentType      string         `json:"ContentType"`
			CorrelationID    string         `json:"CorrelationId"`
			Label            string         `json:"Label"`
			MessageID        string         `json:"MessageId"`
			ReplyTo          string         `json:"ReplyTo"`
			ReplyToSessionID string         `json:"ReplyToSessionId"`
			SessionID        string         `json:"SessionId"`
			To               string         `json:"To"`
			Properties       map[string]any `json:"Properties"`
		} `json:"CorrelationFilter,omitempty"`
		SQLFilter *struct {
			SQLExpression string `json:"SqlExpression"`
		} `json:"SqlFilter,omitempty"`
		Action json.RawMessage `json:"Action,omitempty"`
	} `json:"Properties"`
}

// LoadConfig reads a Config.json file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("servicebus: load config %s: %w", path, err)
	}
	return ParseConfig(b)
}

// ParseConfig parses Config.json content and checks every entity, so that
// New on the result fails only for duplicate names.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("servicebus: parse config: %v: %w", err, providers.ErrInvalid)
	}
	if _, err := New(c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// apply creates the entities of u.
func (em *Emulator) apply(u UserConfig) error {
	for _, ns := range u.Namespaces {
		for _, q := range ns.Queues {
			p, err := q.Properties.properties("queue " + q.Name)
			if err == nil {
				err = em.CreateQueue(q.Name, p)
			}
			if err != nil {
				return err
			}
		}
		for _, t := range ns.Topics {
			p, err := t.Properties.properties("topic " + t.Name)
			if err == nil {
				err = em.CreateTopic(t.Name, p)
			}
			if err != nil {
				return err
			}
			for _, s := range t.Subscriptions {
				if err := em.applySubscription(t.Name, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (em *Emulator) applySubscription(topic string, s SubscriptionConfig) error {
	p, err := s.Properties.properties("subscription " + s.Name)
	if err != nil {
		return err
	}
	var rules []Rule
	for _, rc := range s.Rules {
		r := Rule{Name: rc.Name}
		switch rp := rc.Properties; {
		case rp.FilterType == "Sql" && rp.SQLFilter != nil:
			r.SQL = rp.SQLFilter.SQLExpression
		case rp.FilterType == "Correlation" && rp.CorrelationFilter != nil:
			cf := rp.CorrelationFilter
			r.Correlation = &CorrelationFilter{
				CorrelationID: cf.CorrelationID, MessageID: cf.MessageID, To: cf.To,
				ReplyTo: cf.ReplyTo, Subject: cf.Label, SessionID: cf.SessionID,
				ReplyToSessionID: cf.ReplyToSessionID, ContentType: cf.ContentType,
				Properties: cf.Properties,
			}
		default:
			return fmt.Errorf("servicebus: rule %q of subscription %q: FilterType %q "+
				"without its filter: %w", rc.Name, s.Name, rp.FilterType, providers.ErrInvalid)
		}
		rules = append(rules, r)
	}
	return em.CreateSubscription(topic, s.Name, p, rules...)
}

func (c EntityJSONConfig) properties(what string) (EntityProperties, error) {
	p := EntityProperties{
		MaxDeliveryCount:                 c.MaxDeliveryCount,
		DeadLetteringOnMessageExpiration: c.DeadLetteringOnMessageExpiration,
		RequiresSession:                  c.RequiresSession,
	}
	var err error
	if p.LockDuration, err = parseISODuration(c.LockDuration); err != nil {
		return p, fmt.Errorf("servicebus: %s: LockDuration: %w", what, err)
	}
	if p.DefaultMessageTimeToLive, err = parseISODuration(c.DefaultMessageTimeToLive); err != nil {
		return p, fmt.Errorf("servicebus: %s: DefaultMessageTimeToLive: %w", what, err)
	}
	return p, nil
}

var isoDuration = regexp.MustCompile(
	`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// parseISODuration parses the ISO 8601 durations Config.json uses
// (P[nD][T[nH][nM][n[.n]S]]); "" is 0.
func parseISODuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || s == "P" || s[len(s)-1] == 'T' {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration: %w", s, providers.ErrInvalid)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, err := strconv.ParseInt(m[i+1], 10, 32)
			if err != nil {
				return 0, fmt.Errorf("%q: %w", s, providers.ErrInvalid)
			}
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		f, _ := strconv.ParseFloat(m[4], 64)
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}
