package servicebus

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald/providers"
)

// Scheme is the URL scheme this package registers: azuresb://NAMESPACE.
const Scheme = "azuresb"

// Service Bus limits that herald checks before sending.
const (
	// DefaultMaxMessageBytes is the largest message of the Standard tier,
	// 256 KiB, used unless Options.MaxMessageBytes (or the URL parameter
	// maxmessagebytes) says otherwise, as for the Premium tier.
	DefaultMaxMessageBytes = 256 << 10
	// attributeOverhead is what AMQP adds per application property
	// around its name and value (two string constructors and lengths).
	attributeOverhead = 4
	// maxIDLength is the longest MessageID and SessionID Service Bus
	// accepts; longer herald IDs travel in the envelope only.
	maxIDLength = 128
	// closeTimeout bounds the closing of one link.
	closeTimeout = 5 * time.Second
)

// Options configure a provider made with New.
type Options struct {
	// Namespace is the namespace's host: "myns" (meaning
	// myns.servicebus.windows.net), a full host name, or an emulator's
	// loopback "127.0.0.1:PORT". It may be empty when a connection string
	// is given; when both are given their hosts must agree.
	Namespace string
	// ConnectionString authenticates with a shared access key or
	// signature. Empty means $HERALD_SERVICEBUS_CONNECTION_STRING; when
	// that is empty too, a loopback Namespace gets the emulators'
	// placeholder key and any other namespace uses Credential.
	// UseDevelopmentEmulator=true (plain TCP) is refused unless the host
	// is loopback.
	ConnectionString string
	// Credential is used when there is no connection string. Default:
	// azidentity's DefaultAzureCredential chain.
	Credential azcore.TokenCredential
	// Admin creates topics and subscriptions for Provision and counts dead
	// letters. Default: the administration client of azservicebus on
	// Azure; against an emulator reached by URL, a checker that only
	// verifies that the entities exist (see Provision).
	Admin Admin
	// MaxMessageBytes is the largest message sent: 256 KiB by default (the
	// Standard tier); Premium namespaces accept up to 100 MiB.
	MaxMessageBytes int
	// ClientOptions are passed to azservicebus (retries, web sockets).
	ClientOptions *azservicebus.ClientOptions
}

// Provider is herald's Azure Service Bus provider. It is safe for
// concurrent use.
type Provider struct {
	client   *azservicebus.Client
	admin    Admin
	emulator bool
	limits   providers.Limits
	host     string

	mu     sync.Mutex
	closed bool
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.Provisioner      = (*Provider)(nil)
	_ providers.DeadLetterSource = (*Provider)(nil)
)

func init() {
	providers.Register(Scheme, openURL)
}

// openURL opens azuresb://NAMESPACE[?maxmessagebytes=N][&admin=http://127.0.0.1:PORT].
func openURL(ctx context.Context, u *url.URL) (providers.Provider, error) {
	o := Options{Namespace: u.Host}
	for k, v := range u.Query() {
		switch k {
		case "maxmessagebytes":
			n, err := strconv.Atoi(v[len(v)-1])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%w: servicebus: URL parameter maxmessagebytes "+
					"must be a positive number", providers.ErrInvalid)
			}
			o.MaxMessageBytes = n
		case "admin":
			a, err := NewHTTPAdmin(v[len(v)-1])
			if err != nil {
				return nil, err
			}
			o.Admin = a
		default:
			return nil, fmt.Errorf("%w: servicebus: unknown URL parameter %q (known: "+
				"maxmessagebytes, admin); the connection string comes from %s", providers.ErrInvalid,
				k, EnvConnectionString)
		}
	}
	return New(ctx, o)
}

// New connects to a namespace. It opens no connection yet: the first
// OpenTopic or OpenSubscription does.
func New(ctx context.Context, o Options) (*Provider, error) {
	p := &Provider{admin: o.Admin}
	limit := o.MaxMessageBytes
	if limit <= 0 {
		limit = DefaultMaxMessageBytes
	}
	p.limits = providers.Limits{MaxMessageBytes: limit, AttributeOverhead: attributeOverhead}
	copts := o.ClientOptions
	if copts == nil {
		copts = &azservicebus.ClientOptions{}
	}

	cs := o.ConnectionString
	if cs == "" {
		cs = os.Getenv(EnvConnectionString)
	}
	ns := fullNamespace(o.Namespace)
	if cs == "" && ns != "" && isLoopback(ns) {
		cs = emulatorConnectionString(ns)
	}

	if cs != "" {
		ci, err := parseConnectionString(cs)
		if err != nil {
			return nil, err
		}
		if ns != "" && ns != ci.host {
			return nil, fmt.Errorf("%w: servicebus: namespace %s differs from the connection "+
				"string's endpoint %s", providers.ErrInvalid, ns, ci.host)
		}
		p.host, p.emulator = ci.host, ci.emulator
		p.client, err = azservicebus.NewClientFromConnectionString(cs, copts)
		if err != nil {
			// Checked above; the client's own error may quote the string.
			return nil, fmt.Errorf("%w: servicebus: azservicebus refused the connection string",
				providers.ErrInvalid)
		}
		if p.admin == nil {
			if p.emulator {
				p.admin = &checker{p: p}
			} else if p.admin, err = newAzureAdminFromConnectionString(cs); err != nil {
				_ = p.Close()
				return nil, err
			}
		}
		return p, nil
	}

	if ns == "" {
		return nil, fmt.Errorf("%w: servicebus: no namespace and no connection string: use "+
			"azuresb://NAMESPACE or set %s", providers.ErrInvalid, EnvConnectionString)
	}
	cred := o.Credential
	if cred == nil {
		var err error
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("%w: servicebus: no connection string in %s and no Azure "+
				"credential: %w", providers.ErrInvalid, EnvConnectionString, err)
		}
	}
	var err error
	p.host = ns
	if p.client, err = azservicebus.NewClient(ns, cred, copts); err != nil {
		return nil, fmt.Errorf("%w: servicebus: client for %s: %w", providers.ErrInvalid, ns, err)
	}
	if p.admin == nil {
		if p.admin, err = newAzureAdmin(ns, cred); err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Limits reports 256 KiB (or Options.MaxMessageBytes) and no attribute
// limit: the envelope always travels in binary mode.
func (p *Provider) Limits() providers.Limits { return p.limits }

// Close closes the connection and every topic and subscription opened on
// it. It is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := p.client.Close(ctx); err != nil {
		return wrap("close connection to", p.host, err)
	}
	return nil
}

func (p *Provider) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// subscriptionPath is the entity path of a subscription, as errors name it.
func subscriptionPath(topic, consumer string) string {
	return topic + "/Subscriptions/" + consumer
}
