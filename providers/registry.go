package providers

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
)

// Opener opens a provider from a URL whose scheme it was registered for.
type Opener func(ctx context.Context, u *url.URL) (Provider, error)

// SchemeInfo is what Register records about a scheme.
type SchemeInfo struct {
	// Opener opens the provider.
	Opener Opener
	// Import is the package path that registers the scheme, named in the
	// error for an unknown scheme.
	Import string
}

var (
	registryMu sync.RWMutex
	registry   = map[string]SchemeInfo{}
	// known lists the schemes herald ships, so that an error can name
	// the import that adds one.
	known = map[string]string{
		"mem":       "github.com/seed06bc8277/herald/providers/memory",
		"snssqs":    "github.com/seed06bc8277/herald/providers/snssqs",
		"gcppubsub": "github.com/seed06bc8277/herald/providers/gcppubsub",
		"azuresb":   "github.com/seed06bc8277/herald/providers/servicebus",
	}
)

// Register makes a URL scheme available to herald.Open. Driver packages
// call it from init; registering a scheme twice panics.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("herald: scheme registered twice: " + scheme)
	}
	registry[scheme] = SchemeInfo{Opener: open, Import: known[scheme]}
}

// Lookup returns the opener registered for scheme. For an unknown scheme
// the error wraps ErrInvalid and lists the registered schemes and, when
// herald ships the scheme, the import that registers it.
func Lookup(scheme string) (Opener, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if info, ok := registry[scheme]; ok {
		return info.Opener, nil
	}
	have := make([]string, 0, len(registry))
	for s := range registry {
		have = append(have, s+"://")
	}
	slices.Sort(have)
	if imp, ok := known[scheme]; ok {
		return nil, fmt.Errorf("%w: scheme %q is not registered: import _ %q (registered: %v)",
			ErrInvalid, scheme, imp, have)
	}
	return nil, fmt.Errorf("%w: unknown scheme %q (registered: %v)", ErrInvalid, scheme, have)
}
