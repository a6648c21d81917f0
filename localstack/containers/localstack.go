package containers

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/testcontainers/testcontainers-go"
	tclocalstack "github.com/testcontainers/testcontainers-go/modules/localstack"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/snssqs"
)

// The LocalStack container's settings.
const (
	// DefaultLocalStackImage is the LocalStack image StartLocalStack runs
	// unless HERALD_LOCALSTACK_IMAGE names another. Current images need
	// LOCALSTACK_AUTH_TOKEN; pin a tag there for repeatable runs.
	DefaultLocalStackImage = "localstack/localstack:latest"
	// EnvLocalStackImage names the variable that replaces
	// DefaultLocalStackImage.
	EnvLocalStackImage = "HERALD_LOCALSTACK_IMAGE"
	// EnvLocalStackAuthToken names LocalStack's own variable for its auth
	// token, which StartLocalStack passes to the container when set.
	EnvLocalStackAuthToken = "LOCALSTACK_AUTH_TOKEN"
	// localStackPort is LocalStack's edge port for every service.
	localStackPort = "4566/tcp"
	// localStackReady bounds the wait for LocalStack's health endpoint
	// after the container started (licence activation included).
	localStackReady = 3 * time.Minute
)

// LocalStack is a LocalStack container serving SNS and SQS.
type LocalStack struct {
	// Endpoint is the base URL of LocalStack's edge port on the Docker
	// host, such as "http://localhost:32771".
	Endpoint string
	// Region is the region to sign requests for: AWS_REGION, else
	// AWS_DEFAULT_REGION, else "us-east-1". LocalStack accepts any.
	Region string
	// URL opens herald on it: "snssqs://?endpoint=ENDPOINT&region=REGION".
	URL string
	// AccessKeyID and SecretAccessKey are the static test credentials
	// ("test"/"test"); LocalStack accepts any.
	AccessKeyID, SecretAccessKey string

	term terminator
}

// StartLocalStack runs LocalStack (DefaultLocalStackImage, or
// $HERALD_LOCALSTACK_IMAGE) with SERVICES=sns,sqs through testcontainers'
// LocalStack module, passing LOCALSTACK_AUTH_TOKEN through when it is
// set, and waits (at most 3 minutes after the container started) until
// its health endpoint answers.
//
// It returns DockerAvailable's error, wrapping providers.ErrUnavailable,
// when no Docker engine answers within 5 s. Any other failure also wraps
// ErrUnavailable and removes what was started. herald's error text never
// includes the auth token.
//
// So that herald.Open(l.URL) finds credentials through the AWS default
// chain, StartLocalStack sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// to "test" when AWS_ACCESS_KEY_ID is unset, as localstack.StartAWS does.
// Options carries the credentials without the environment.
func StartLocalStack(ctx context.Context) (*LocalStack, error) {
	if err := DockerAvailable(ctx); err != nil {
		return nil, fmt.Errorf("containers: start LocalStack: %w", err)
	}
	ctx, cancel := startContext(ctx)
	defer cancel()

	l := &LocalStack{
		Region:          awsRegion(),
		AccessKeyID:     localstack.TestAccessKey,
		SecretAccessKey: localstack.TestAccessKey,
	}
	img := image(EnvLocalStackImage, DefaultLocalStackImage)
	env := map[string]string{"SERVICES": "sns,sqs"}
	if tok := os.Getenv(EnvLocalStackAuthToken); tok != "" {
		env[EnvLocalStackAuthToken] = tok
	}

	err := guard("start LocalStack", func() error {
		ctr, err := tclocalstack.Run(ctx, img,
			testcontainers.WithEnv(env),
			testcontainers.WithWaitStrategyAndDeadline(localStackReady,
				wait.ForHTTP("/_localstack/health").WithPort(localStackPort).
					WithStartupTimeout(localStackReady)),
		)
		if ctr != nil {
			l.term.add(terminate("LocalStack", ctr))
		}
		if err != nil {
			return fmt.Errorf("%w: containers: run LocalStack %s (current images need %s): %w",
				providers.ErrUnavailable, img, EnvLocalStackAuthToken, err)
		}
		ep, err := ctr.PortEndpoint(ctx, localStackPort, "http")
		if err != nil {
			return fmt.Errorf("%w: containers: LocalStack's port %s: %w",
				providers.ErrUnavailable, localStackPort, err)
		}
		l.Endpoint = strings.TrimRight(ep, "/")
		return nil
	})
	if err != nil {
		_ = l.Close()
		return nil, err
	}

	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		os.Setenv("AWS_ACCESS_KEY_ID", localstack.TestAccessKey)
		os.Setenv("AWS_SECRET_ACCESS_KEY", localstack.TestAccessKey)
	}
	q := url.Values{"region": {l.Region}, "endpoint": {l.Endpoint}}
	l.URL = snssqs.Scheme + "://?" + q.Encode()
	return l, nil
}

// Options are the snssqs provider options for it: its endpoint and
// region, and the static test credentials, so that snssqs.New needs
// nothing from the environment.
func (l *LocalStack) Options() snssqs.Options {
	return snssqs.Options{
		Region:   l.Region,
		Endpoint: l.Endpoint,
		Config: &aws.Config{
			Region: l.Region,
			Credentials: credentials.NewStaticCredentialsProvider(
				l.AccessKeyID, l.SecretAccessKey, ""),
		},
	}
}

// Close removes the container (waiting at most 1 minute). It is safe to
// call more than once.
func (l *LocalStack) Close() error {
	if l == nil {
		return nil
	}
	return l.term.close()
}

// awsRegion is AWS_REGION, else AWS_DEFAULT_REGION, else the default.
func awsRegion() string {
	for _, env := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if r := os.Getenv(env); r != "" {
			return r
		}
	}
	return localstack.DefaultAWSRegion
}
