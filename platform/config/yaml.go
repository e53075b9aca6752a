package config

import (
	"bytes"
	"fmt"
	"maps"

	"gopkg.in/yaml.v3"
)

// header opens the YAML that YAML writes.
const header = `# Gatehouse configuration.
# Each setting can be overridden by the environment variable named above it;
# an empty variable counts as unset.

`

// sectionDocs annotates the keys that group settings.
func sectionDocs() map[string]string {
	return map[string]string{
		"http":               "Public HTTP: OAuth 2.0, OIDC and the Matrix login API.",
		"grpc":               "Internal gRPC between services (plaintext: use a private network or a mesh with mTLS).",
		"ops":                "Operations: health checks, Prometheus metrics and (when asked) the Go profiler.",
		"database":           "PostgreSQL holding the projections.",
		"nats":               "NATS JetStream holding the events.",
		"log":                "Process log on stderr.",
		"telemetry":          "OpenTelemetry tracing.",
		"passwords":          "Password hashing with argon2id (and bcrypt hashes imported from Synapse).",
		"passwords.argon2":   "Cost parameters; weaker than OWASP's minimum is refused.",
		"matrix":             "The Matrix homeserver Gatehouse authenticates for.",
		"services":           "Which services run in this process, and where the others are.",
		"services.endpoints": "",
		"smtp":               "Outgoing email (verification codes, recovery links).",
		"email":              "Envelope of outgoing email.",
		"branding":           "How Gatehouse names itself to users.",
		"web":                "The web service's pages (sign-in, registration, consent, account).",
		"captcha":            "CAPTCHA at registration (and at sign-in after failures), verified with the provider server side.",
		"nats.tls":           "TLS to an external NATS server.",
		"upstream":           "Sign-in with upstream identity providers (OpenID Connect, or OAuth 2.0 with a userinfo endpoint). providers is a list of {id, human_name, brand, issuer, discovery, client_id, client_secret(_file), token_endpoint_auth_method, private_key_file, scopes, pkce, response_mode, on_backchannel_logout, claims.{subject,localpart,displayname,email}.{template,action}}; see README.",
		"secrets":            "Key-encryption keys: the secrets kept in events (services' keys, password hashes) are sealed with them.",
	}
}

// YAML returns c as an annotated YAML document, fit for a config file: each
// key is preceded by what it means and its environment variable. Secrets are
// written as they are; use Redacted first to show a configuration to anyone.
func (c Config) YAML() ([]byte, error) {
	return c.marshal(true)
}

// marshal encodes c, with comments when annotated.
func (c Config) marshal(annotated bool) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	if annotated {
		docs := sectionDocs()
		maps.Copy(docs, rateLimitDocs())
		maps.Copy(docs, pendingDocs())
		for _, f := range fields() {
			docs[f.key] = f.doc + "\nEnv: " + f.env
		}
		annotate(&doc, "", docs)
	}
	var buf bytes.Buffer
	if annotated {
		buf.WriteString(header)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// annotate sets the head comment of each key of the mapping n (and of the
// mappings under it) found in docs, by its dotted path.
func annotate(n *yaml.Node, prefix string, docs map[string]string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		path := prefix + key.Value
		if d := docs[path]; d != "" {
			key.HeadComment = d
		}
		if path != "services.endpoints" {
			annotate(val, path+".", docs)
		}
	}
}
