package servicebus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/seed06bc8277/herald/providers"
)

// ErrExists marks a create whose name is taken (by a queue or topic, or a
// subscription of the same topic). Such errors also match
// providers.ErrInvalid.
var ErrExists = errors.New("servicebus: name taken")

var errExists = fmt.Errorf("%w: %w", ErrExists, providers.ErrInvalid)

// checkName enforces the Service Bus name rules the emulator relies on:
// 1 to 260 characters, no leading "$" and no "/Subscriptions/" inside.
func checkName(op, name string) error {
	lower := strings.ToLower(name)
	if name == "" || len(name) > 260 || strings.HasPrefix(name, "$") ||
		strings.Contains(lower, "/subscriptions/") || strings.Contains(lower, "/$") ||
		strings.Trim(name, "/") != name {
		return fmt.Errorf("servicebus: %s %q: invalid name: %w", op, name, providers.ErrInvalid)
	}
	return nil
}

// CreateQueue adds a queue. It fails with ErrExists (which matches
// providers.ErrInvalid too) when the name is taken by a queue or topic,
// and with providers.ErrInvalid when the properties are out of range.
func (em *Emulator) CreateQueue(name string, p EntityProperties) error {
	if err := checkName("create queue", name); err != nil {
		return err
	}
	if err := p.validate("create queue", name); err != nil {
		return err
	}
	b := em.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	key := strings.ToLower(name)
	if b.queues[key] != nil || b.topics[key] != nil {
		return fmt.Errorf("servicebus: create queue %q: %w", name, errExists)
	}
	b.queues[key] = newStore(name, p.withDefaults(), false)
	return nil
}

// DeleteQueue removes a queue and its messages; providers.ErrNotFound when
// absent. Attached receivers stop getting messages; attached senders are
// detached with amqp:not-found at their next message.
func (em *Emulator) DeleteQueue(name string) error {
	b := em.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	key := strings.ToLower(name)
	if b.queues[key] == nil {
		return fmt.Errorf("servicebus: delete queue %q: %w", name, providers.ErrNotFound)
	}
	b.queues[key].deleted.Store(true)
	delete(b.queues, key)
	return nil
}

// CreateTopic adds a topic with no subscriptions. Only
// DefaultMessageTimeToLive of p applies to a topic.
func (em *Emulator) CreateTopic(name string, p EntityProperties) error {
	if err := checkName("create topic", name); err != nil {
		return err
	}
	if err := p.validate("create topic", name); err != nil {
		return err
	}
	b := em.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	key := strings.ToLower(name)
	if b.queues[key] != nil || b.topics[key] != nil {
		return fmt.Errorf("servicebus: create topic %q: %w", name, errExists)
	}
	b.topics[key] = &topic{
		name: name, props: p, subs: map[string]*subscription{},
		scheduled: newStore(name, p.withDefaults(), true),
	}
	return nil
}

// DeleteTopic removes a topic with its subscriptions and their messages;
// attached senders are detached with amqp:not-found at their next message.
func (em *Emulator) DeleteTopic(name string) error {
	b := em.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	key := strings.ToLower(name)
	if b.topics[key] == nil {
		return fmt.Errorf("servicebus: delete topic %q: %w", name, providers.ErrNotFound)
	}
	b.topics[key].deleted.Store(true)
	delete(b.topics, key)
	return nil
}

// CreateSubscription adds a subscription to a topic. With no rules it
// gets the "$Default" TrueFilter rule; a message is copied to it when any
// rule matches. Invalid rules fail with providers.ErrInvalid, a missing
// topic with providers.ErrNotFound.
func (em *Emulator) CreateSubscription(topicName, name string, p EntityProperties,
	rules ...Rule) error {
	op := "create subscription " + topicName + "/"
	if err := checkName(op, name); err != nil {
		return err
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("servicebus: %s%q: '/' in name: %w", op, name, providers.ErrInvalid)
	}
	if err := p.validate(op, name); err != nil {
		return err
	}
	if len(rules) == 0 {
		rules = []Rule{{Name: "$Default"}}
	}
	compiled := make([]Rule, len(rules))
	for i, r := range rules {
		if err := r.compile(); err != nil {
			return err
		}
		compiled[i] = r
	}
	t, err := em.topic(op, topicName)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := strings.ToLower(name)
	if t.subs[key] != nil {
		return fmt.Errorf("servicebus: %s%q: %w", op, name, errExists)
	}
	st := newStore(t.name+"/Subscriptions/"+name, p.withDefaults(), false)
	st.isSub = true
	t.subs[key] = &subscription{name: name, st: st, rules: compiled}
	return nil
}

// DeleteSubscription removes a subscription and its messages.
func (em *Emulator) DeleteSubscription(topicName, name string) error {
	op := "delete subscription " + topicName + "/"
	t, err := em.topic(op, topicName)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := strings.ToLower(name)
	if t.subs[key] == nil {
		return fmt.Errorf("servicebus: %s%q: %w", op, name, providers.ErrNotFound)
	}
	delete(t.subs, key)
	return nil
}

// AddRule adds a rule to a subscription; a rule with the same name
// (case-insensitive) is replaced. Messages already in the subscription
// are not re-evaluated, as in Service Bus.
func (em *Emulator) AddRule(topicName, sub string, r Rule) error {
	op := "add rule to " + topicName + "/" + sub
	if r.Name == "" {
		return fmt.Errorf("servicebus: %s: empty rule name: %w", op, providers.ErrInvalid)
	}
	if err := r.compile(); err != nil {
		return err
	}
	s, err := em.subscription(op, topicName, sub)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := make([]Rule, 0, len(s.rules)+1)
	for _, old := range s.rules {
		if !strings.EqualFold(old.Name, r.Name) {
			rules = append(rules, old)
		}
	}
	s.rules = append(rules, r)
	return nil
}

// DeleteRule removes a rule by name (case-insensitive); a subscription
// left without rules receives nothing. providers.ErrNotFound when absent.
func (em *Emulator) DeleteRule(topicName, sub, name string) error {
	op := "delete rule " + name + " of " + topicName + "/" + sub
	s, err := em.subscription(op, topicName, sub)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if strings.EqualFold(r.Name, name) {
			s.rules = append(s.rules[:i:i], s.rules[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("servicebus: %s: %w", op, providers.ErrNotFound)
}

func (em *Emulator) subscription(op, topicName, name string) (*subscription, error) {
	t, err := em.topic(op, topicName)
	if err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.subs[strings.ToLower(name)]
	if s == nil {
		return nil, fmt.Errorf("servicebus: %s: subscription %q: %w", op, name, providers.ErrNotFound)
	}
	return s, nil
}

func (em *Emulator) topic(op, name string) (*topic, error) {
	em.broker.mu.RLock()
	defer em.broker.mu.RUnlock()
	t := em.broker.topics[strings.ToLower(name)]
	if t == nil {
		return nil, fmt.Errorf("servicebus: %s: topic %q: %w", op, name, providers.ErrNotFound)
	}
	return t, nil
}

// Stats counts the messages of a queue or subscription
// ("topic/Subscriptions/name"), or of its dead-letter queue with the
// "/$DeadLetterQueue" suffix. It fails with providers.ErrNotFound for an
// unknown path or a topic.
func (em *Emulator) Stats(path string) (Stats, error) {
	n, ok := em.broker.resolve(path)
	if !ok || n.st == nil || n.mgmt {
		return Stats{}, fmt.Errorf("servicebus: stats %q: %w", path, providers.ErrNotFound)
	}
	return n.st.stats(), nil
}

// Count returns every message a queue, subscription or dead-letter queue
// holds (ready, locked, deferred and scheduled), as Stats(path).Total().
func (em *Emulator) Count(path string) (int, error) {
	s, err := em.Stats(path)
	return s.Total(), err
}
