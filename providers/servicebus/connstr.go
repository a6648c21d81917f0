package servicebus

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/seed06bc8277/herald/providers"
)

// EnvConnectionString names the variable that holds a Service Bus
// connection string. It is read when Options.ConnectionString is empty,
// so that secrets stay out of URLs and command lines.
const EnvConnectionString = "HERALD_SERVICEBUS_CONNECTION_STRING"

// azureSuffix is appended to a bare namespace name ("myns").
const azureSuffix = ".servicebus.windows.net"

// emulatorKey is the well-known placeholder key of Microsoft's emulator,
// which herald's emulator also accepts. It is no secret: emulators accept
// any key.
const emulatorKey = "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE"

// connInfo is what herald needs from a connection string.
type connInfo struct {
	// host is the endpoint's host[:port].
	host string
	// emulator is UseDevelopmentEmulator=true: plain TCP, no TLS.
	emulator bool
}

// parseConnectionString checks a connection string for the parts
// azservicebus needs. Its errors name the missing or wrong key, never a
// value, since the string holds a secret.
func parseConnectionString(cs string) (connInfo, error) {
	var ci connInfo
	var endpoint string
	var keyName, key, sas bool
	for _, part := range strings.Split(cs, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return ci, fmt.Errorf("%w: servicebus: connection string has a part without "+
				"'=' (want Key=Value;...)", providers.ErrInvalid)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			endpoint = v
		case "sharedaccesskeyname":
			keyName = v != ""
		case "sharedaccesskey":
			key = v != ""
		case "sharedaccesssignature":
			sas = v != ""
		case "usedevelopmentemulator":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return ci, fmt.Errorf("%w: servicebus: connection string key "+
					"UseDevelopmentEmulator is not true or false", providers.ErrInvalid)
			}
			ci.emulator = b
		}
	}
	if endpoint == "" {
		return ci, fmt.Errorf("%w: servicebus: connection string has no Endpoint key",
			providers.ErrInvalid)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "sb" || u.Host == "" {
		return ci, fmt.Errorf("%w: servicebus: connection string key Endpoint must be "+
			"sb://HOST[:PORT]", providers.ErrInvalid)
	}
	ci.host = u.Host
	if !sas && !keyName {
		return ci, fmt.Errorf("%w: servicebus: connection string has neither "+
			"SharedAccessKeyName nor SharedAccessSignature", providers.ErrInvalid)
	}
	if !sas && !key {
		return ci, fmt.Errorf("%w: servicebus: connection string has SharedAccessKeyName "+
			"but no SharedAccessKey", providers.ErrInvalid)
	}
	if ci.emulator && !isLoopback(ci.host) {
		return ci, fmt.Errorf("%w: servicebus: UseDevelopmentEmulator=true (no TLS) is "+
			"allowed only for loopback hosts, not %s", providers.ErrInvalid, u.Hostname())
	}
	return ci, nil
}

// isLoopback reports whether host[:port] names this machine: localhost,
// 127.0.0.0/8 or ::1.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// emulatorConnectionString is the connection string of an emulator on a
// loopback host:port, with the emulators' placeholder key.
func emulatorConnectionString(hostport string) string {
	return "Endpoint=sb://" + hostport + ";" + emulatorKey + ";UseDevelopmentEmulator=true"
}

// fullNamespace turns "myns" into "myns.servicebus.windows.net"; a name
// with a dot or a port is kept.
func fullNamespace(ns string) string {
	if ns == "" || strings.ContainsAny(ns, ".:") {
		return ns
	}
	return ns + azureSuffix
}
