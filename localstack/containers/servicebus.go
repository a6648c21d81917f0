package containers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/seed06bc8277/herald/providers"
	sbprov "github.com/seed06bc8277/herald/providers/servicebus"
)

// The Service Bus emulator containers' settings. testcontainers-go has no
// Service Bus module at v0.45.0 in the module proxy herald uses, so the
// pair is started as two generic containers on a network of their own.
const (
	// DefaultServiceBusImage is Microsoft's Service Bus emulator image,
	// run unless HERALD_SERVICEBUS_IMAGE names another.
	DefaultServiceBusImage = "mcr.microsoft.com/azure-messaging/servicebus-emulator:latest"
	// EnvServiceBusImage names the variable that replaces
	// DefaultServiceBusImage.
	EnvServiceBusImage = "HERALD_SERVICEBUS_IMAGE"
	// DefaultMSSQLImage is the SQL Server image the emulator keeps its
	// state in, run unless HERALD_MSSQL_IMAGE names another. It exists
	// for linux/amd64 only.
	DefaultMSSQLImage = "mcr.microsoft.com/mssql/server:2022-latest"
	// EnvMSSQLImage names the variable that replaces DefaultMSSQLImage.
	EnvMSSQLImage = "HERALD_MSSQL_IMAGE"

	// sbAMQPPort is the emulator's AMQP port (plain TCP).
	sbAMQPPort = "5672/tcp"
	// sbHealthPort serves the emulator's GET /health.
	sbHealthPort = "5300/tcp"
	// sbConfigPath is where the emulator reads its entities from.
	sbConfigPath = "/ServiceBus_Emulator/ConfigFiles/Config.json"
	// mssqlAlias is SQL Server's host name on the pair's network.
	mssqlAlias = "mssql"
	// mssqlReady bounds the wait for SQL Server to finish recovery.
	mssqlReady = 3 * time.Minute
	// sbReady bounds the wait for the emulator's health endpoint.
	sbReady = 3 * time.Minute
)

// ServiceBusEmulator is Microsoft's Service Bus emulator in a container,
// with the SQL Server container it needs.
type ServiceBusEmulator struct {
	// ConnectionString connects azservicebus to it:
	// "Endpoint=sb://HOST:PORT;SharedAccessKeyName=RootManageSharedAccessKey;
	// SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true", the
	// emulator's fixed placeholder key.
	ConnectionString string
	// URL opens herald on it: "azuresb://HOST:PORT". herald's provider
	// accepts it (and ConnectionString) only when HOST is a loopback host
	// (localhost, 127.0.0.0/8, ::1): with a local Docker engine, and not
	// from inside a container, where testcontainers reports the Docker
	// gateway's address instead.
	URL string

	term terminator
}

// StartServiceBusEmulator runs Microsoft's Service Bus emulator
// (DefaultServiceBusImage, or $HERALD_SERVICEBUS_IMAGE) with the entities
// of cfgJSON, a Config.json such as servicebus.WriteConfig writes (nil
// means one without entities). It first starts SQL Server
// (DefaultMSSQLImage, or $HERALD_MSSQL_IMAGE) on a new Docker network,
// with a random sa password, and waits until its recovery is complete
// (at most 3 minutes); then the emulator with ACCEPT_EULA=Y, and waits
// until its AMQP port listens and GET /health answers 200 (at most 3
// minutes). Starting either means accepting Microsoft's licence terms
// for that image, which ACCEPT_EULA=Y declares on the caller's behalf.
//
// The emulator cannot create entities over AMQP: topics and
// subscriptions exist only if cfgJSON lists them, and Provision through
// URL only checks that they exist.
//
// It returns an error wrapping providers.ErrInvalid when cfgJSON is not
// JSON, DockerAvailable's error (wrapping providers.ErrUnavailable) when
// no Docker engine answers within 5 s, and otherwise an error wrapping
// ErrUnavailable after removing whatever it started.
func StartServiceBusEmulator(ctx context.Context, cfgJSON []byte) (*ServiceBusEmulator, error) {
	if cfgJSON == nil {
		var buf bytes.Buffer
		if err := sbprov.WriteConfig(&buf); err != nil {
			return nil, err
		}
		cfgJSON = buf.Bytes()
	}
	if !json.Valid(cfgJSON) {
		return nil, fmt.Errorf("%w: containers: the Service Bus emulator's Config.json "+
			"is not valid JSON", providers.ErrInvalid)
	}
	if err := DockerAvailable(ctx); err != nil {
		return nil, fmt.Errorf("containers: start the Service Bus emulator: %w", err)
	}
	ctx, cancel := startContext(ctx)
	defer cancel()

	s := &ServiceBusEmulator{}
	err := guard("start the Service Bus emulator", func() error {
		return s.start(ctx, cfgJSON)
	})
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// start creates the network, SQL Server and the emulator, registering
// each for removal as soon as it exists.
func (s *ServiceBusEmulator) start(ctx context.Context, cfgJSON []byte) error {
	password, err := saPassword()
	if err != nil {
		return err
	}

	// The network lets the emulator reach SQL Server by its alias.
	nw, err := network.New(ctx)
	if err != nil {
		return fmt.Errorf("%w: containers: create a network for the Service Bus emulator: %w",
			providers.ErrUnavailable, err)
	}
	s.term.add(func(ctx context.Context) error {
		if err := nw.Remove(ctx); err != nil {
			return fmt.Errorf("containers: remove the Service Bus emulator's network: %w", err)
		}
		return nil
	})

	// SQL Server first: the emulator gives up when it cannot log in.
	sqlImg := image(EnvMSSQLImage, DefaultMSSQLImage)
	db, err := testcontainers.Run(ctx, sqlImg,
		testcontainers.WithEnv(map[string]string{
			"ACCEPT_EULA":       "Y",
			"MSSQL_SA_PASSWORD": password,
		}),
		network.WithNetwork([]string{mssqlAlias}, nw),
		testcontainers.WithWaitStrategyAndDeadline(mssqlReady,
			wait.ForLog("Recovery is complete.").WithStartupTimeout(mssqlReady)),
	)
	if db != nil {
		s.term.add(terminate("SQL Server", db))
	}
	if err != nil {
		return fmt.Errorf("%w: containers: run SQL Server %s for the Service Bus emulator: %w",
			providers.ErrUnavailable, sqlImg, err)
	}

	// Then the emulator, with the entities of cfgJSON.
	sbImg := image(EnvServiceBusImage, DefaultServiceBusImage)
	sb, err := testcontainers.Run(ctx, sbImg,
		testcontainers.WithEnv(map[string]string{
			"ACCEPT_EULA":       "Y",
			"SQL_SERVER":        mssqlAlias,
			"MSSQL_SA_PASSWORD": password,
			// SQL Server is ready already: no need for the emulator's
			// default 15 s wait before it connects.
			"SQL_WAIT_INTERVAL": "0",
		}),
		network.WithNetwork([]string{"servicebus"}, nw),
		testcontainers.WithExposedPorts(sbAMQPPort, sbHealthPort),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            bytes.NewReader(cfgJSON),
			ContainerFilePath: sbConfigPath,
			FileMode:          0o644,
		}),
		testcontainers.WithWaitStrategyAndDeadline(sbReady,
			wait.ForListeningPort(sbAMQPPort).WithStartupTimeout(sbReady),
			wait.ForHTTP("/health").WithPort(sbHealthPort).WithStartupTimeout(sbReady)),
	)
	if sb != nil {
		s.term.add(terminate("Service Bus emulator", sb))
	}
	if err != nil {
		return fmt.Errorf("%w: containers: run the Service Bus emulator %s: %w",
			providers.ErrUnavailable, sbImg, err)
	}

	hostPort, err := sb.PortEndpoint(ctx, sbAMQPPort, "")
	if err != nil {
		return fmt.Errorf("%w: containers: the Service Bus emulator's port %s: %w",
			providers.ErrUnavailable, sbAMQPPort, err)
	}
	s.ConnectionString = "Endpoint=sb://" + hostPort + ";SharedAccessKeyName=" +
		"RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
	s.URL = sbprov.Scheme + "://" + hostPort
	return nil
}

// Options are the servicebus provider options for it: the connection
// string, and no Admin, so that Provision checks that the entities of the
// Config.json exist.
func (s *ServiceBusEmulator) Options() sbprov.Options {
	return sbprov.Options{ConnectionString: s.ConnectionString}
}

// Close removes the emulator, SQL Server and their network (waiting at
// most 1 minute), dropping every message. It is safe to call more than
// once.
func (s *ServiceBusEmulator) Close() error {
	if s == nil {
		return nil
	}
	return s.term.close()
}

// saPassword returns a random SQL Server sa password that meets its
// rules (8 or more characters from three of: upper case, lower case,
// digits, symbols).
func saPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("containers: random SQL Server password: %w", err)
	}
	return "Hx7-" + hex.EncodeToString(b), nil
}
