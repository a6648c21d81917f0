// Package integration_test holds herald's end-to-end scenarios that need
// more than one package: several OS processes sharing one consumer through
// a real provider and a shared idempotency store.
package integration_test
