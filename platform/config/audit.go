package config

import "time"

// Audit configures the audit trail: sign-ins, sessions, consents,
// revocations and administrators' acts, kept in a stream of their own
// (AUDIT) apart from the domain events.
type Audit struct {
	// Retention is how long an audit entry is kept, in the AUDIT stream
	// (its MaxAge) and in the read models the admin API lists
	// (GATEHOUSE_AUDIT_RETENTION; 0: for ever; otherwise at least 1h;
	// 8760h, a year, by default). Every service that writes the stream
	// must have the same.
	Retention time.Duration `yaml:"retention"`
}

// DefaultAuditRetention is how long audit entries are kept by default.
const DefaultAuditRetention = 365 * 24 * time.Hour

// auditFields are the settings of the audit section.
func auditFields() []field {
	return []field{
		{"audit.retention", "GATEHOUSE_AUDIT_RETENTION",
			"How long an audit entry is kept, e.g. 8760h (the default, a year); 0 keeps every entry for ever; otherwise at least 1h.",
			setDuration(func(c *Config) *time.Duration { return &c.Audit.Retention })},
	}
}

// validateAudit adds the problems of the audit section.
func (p *problems) validateAudit(a Audit) {
	if a.Retention < 0 || a.Retention > 0 && a.Retention < time.Hour {
		p.add("audit.retention", "%s is neither 0 (for ever) nor at least 1h", a.Retention)
	}
}
