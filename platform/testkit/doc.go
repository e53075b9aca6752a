// Package testkit starts the real infrastructure tests run against: an embedded
// nats-server with JetStream and a fresh PostgreSQL database per test.
package testkit
