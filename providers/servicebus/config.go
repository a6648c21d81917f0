package servicebus

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/seed06bc8277/herald/providers"
)

// EmulatorNamespace is the namespace name Microsoft's emulator requires
// in its Config.json.
const EmulatorNamespace = "sbemulatorns"

// The Config.json schema of Microsoft's Service Bus emulator, which
// herald's emulator reads too (herald emulate servicebus --config).
type (
	emuConfig struct {
		UserConfig emuUserConfig `json:"UserConfig"`
	}
	emuUserConfig struct {
		Namespaces []emuNamespace `json:"Namespaces"`
		Logging    emuLogging     `json:"Logging"`
	}
	emuLogging struct {
		Type string `json:"Type"`
	}
	emuNamespace struct {
		Name   string     `json:"Name"`
		Queues []any      `json:"Queues"`
		Topics []emuTopic `json:"Topics"`
	}
	emuTopic struct {
		Name          string            `json:"Name"`
		Properties    emuTopicProps     `json:"Properties"`
		Subscriptions []emuSubscription `json:"Subscriptions"`
	}
	emuTopicProps struct {
		DefaultMessageTimeToLive            string `json:"DefaultMessageTimeToLive"`
		DuplicateDetectionHistoryTimeWindow string `json:"DuplicateDetectionHistoryTimeWindow"`
		RequiresDuplicateDetection          bool   `json:"RequiresDuplicateDetection"`
	}
	emuSubscription struct {
		Name       string      `json:"Name"`
		Properties emuSubProps `json:"Properties"`
		Rules      []emuRule   `json:"Rules"`
	}
	emuSubProps struct {
		DeadLetteringOnMessageExpiration bool   `json:"DeadLetteringOnMessageExpiration"`
		DefaultMessageTimeToLive         string `json:"DefaultMessageTimeToLive"`
		LockDuration                     string `json:"LockDuration"`
		MaxDeliveryCount                 int    `json:"MaxDeliveryCount"`
		ForwardDeadLetteredMessagesTo    string `json:"ForwardDeadLetteredMessagesTo"`
		ForwardTo                        string `json:"ForwardTo"`
		RequiresSession                  bool   `json:"RequiresSession"`
	}
	emuRule struct {
		Name       string       `json:"Name"`
		Properties emuRuleProps `json:"Properties"`
	}
	emuRuleProps struct {
		FilterType string  `json:"FilterType"`
		SQLFilter  emuSQL  `json:"SqlFilter"`
		Action     *emuSQL `json:"Action,omitempty"`
	}
	emuSQL struct {
		SQLExpression string `json:"SqlExpression"`
	}
)

// emulatorTTL is the message time to live written for every entity: one
// hour, the longest Microsoft's emulator allows.
const emulatorTTL = "PT1H"

// WriteConfig writes the Config.json of an emulator holding the
// topologies, as Provision would make them on Azure (see Spec): one
// namespace named sbemulatorns, each consumer's subscription with its
// lock duration (whole seconds, rounded up), MaxDeliveryCount and the
// herald-target SQL rule, and messages living at most one hour. Both
// Microsoft's emulator and herald's (`herald emulate servicebus
// --config`) read it.
func WriteConfig(w io.Writer, topologies ...providers.Topology) error {
	ns := emuNamespace{Name: EmulatorNamespace, Queues: []any{}, Topics: []emuTopic{}}
	for _, t := range topologies {
		if t.Topic == "" || len(t.Topic) > maxTopicName {
			return fmt.Errorf("%w: servicebus: topic name %q must be 1 to %d characters",
				providers.ErrInvalid, t.Topic, maxTopicName)
		}
		et := emuTopic{
			Name: t.Topic,
			Properties: emuTopicProps{
				DefaultMessageTimeToLive:            emulatorTTL,
				DuplicateDetectionHistoryTimeWindow: "PT20S",
			},
			Subscriptions: []emuSubscription{},
		}
		for _, c := range t.Consumers {
			if c == "" || len(c) > maxSubscriptionName {
				return fmt.Errorf("%w: servicebus: consumer name %q must be 1 to %d characters",
					providers.ErrInvalid, c, maxSubscriptionName)
			}
			spec := Spec(t, c)
			et.Subscriptions = append(et.Subscriptions, emuSubscription{
				Name: c,
				Properties: emuSubProps{
					DefaultMessageTimeToLive: emulatorTTL,
					LockDuration:             isoSeconds(spec.LockDuration),
					MaxDeliveryCount:         spec.MaxDeliveryCount,
					RequiresSession:          spec.RequiresSession,
				},
				Rules: []emuRule{{
					Name: spec.RuleName,
					Properties: emuRuleProps{
						FilterType: "Sql",
						SQLFilter:  emuSQL{SQLExpression: spec.SQLFilter},
					},
				}},
			})
		}
		ns.Topics = append(ns.Topics, et)
	}
	cfg := emuConfig{UserConfig: emuUserConfig{
		Namespaces: []emuNamespace{ns},
		Logging:    emuLogging{Type: "File"},
	}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&cfg); err != nil {
		return fmt.Errorf("servicebus: write Config.json: %w", err)
	}
	return nil
}
