package ratelimit

import "gatehouse.dev/platform/config"

// Rules are the limits of Gatehouse's public endpoints, as configured
// (rate_limits). A rule's name is its key in the store, so a service that
// applies a rule shares its counts with every other service and replica that
// applies it (the web sign-in and the compat login share login_per_ip).
type Rules struct {
	LoginPerIP          Rule
	LoginPerAccount     Rule
	Registration        Rule
	RecoveryPerIP       Rule
	RecoveryPerAddress  Rule
	EmailPerIP          Rule
	EmailPerAddress     Rule
	EmailPerSession     Rule
	DeviceCodeEntry     Rule
	DeviceAuthorization Rule
	ClientRegistration  Rule
	Authorization       Rule
	BackchannelLogout   Rule
	SecondFactor        Rule
}

// RulesFrom makes the rules of a configuration. What each does when the
// store cannot be reached:
//   - sign-in, password checks and the anonymous OAuth endpoints count in
//     memory (FailLocal): they stay available, and each replica still
//     enforces the rule on its own;
//   - registration, recovery and emails refuse (FailClosed): they send mail
//     to addresses people type, and a spam run while the counts are away
//     costs the server its mail reputation; they need NATS to go on anyway.
func RulesFrom(c config.RateLimits) Rules {
	rule := func(name string, r config.RateLimit, f Failure) Rule {
		return Rule{Name: name, Burst: r.Burst, Every: r.RefillEvery, OnStoreFailure: f}
	}
	return Rules{
		LoginPerIP:          rule("login_per_ip", c.Login.PerIP, FailLocal),
		LoginPerAccount:     rule("login_per_account", c.Login.PerAccount, FailLocal),
		Registration:        rule("registration", c.Registration, FailClosed),
		RecoveryPerIP:       rule("recovery_per_ip", c.Recovery.PerIP, FailClosed),
		RecoveryPerAddress:  rule("recovery_per_address", c.Recovery.PerAddress, FailClosed),
		EmailPerIP:          rule("email_per_ip", c.Email.PerIP, FailClosed),
		EmailPerAddress:     rule("email_per_address", c.Email.PerAddress, FailClosed),
		EmailPerSession:     rule("email_per_session", c.Email.PerSession, FailClosed),
		DeviceCodeEntry:     rule("device_code_entry", c.DeviceCodeEntry, FailLocal),
		DeviceAuthorization: rule("device_authorization", c.DeviceAuthorization, FailLocal),
		ClientRegistration:  rule("client_registration", c.ClientRegistration, FailLocal),
		Authorization:       rule("authorization", c.Authorization, FailLocal),
		BackchannelLogout:   rule("backchannel_logout", c.BackchannelLogout, FailLocal),
		SecondFactor:        rule("second_factor", c.SecondFactor, FailLocal),
	}
}

// DefaultRules are the rules of the default configuration.
func DefaultRules() Rules { return RulesFrom(config.Default().RateLimits) }

// All lists the rules.
func (r Rules) All() []Rule {
	return []Rule{r.LoginPerIP, r.LoginPerAccount, r.Registration, r.RecoveryPerIP, r.RecoveryPerAddress,
		r.EmailPerIP, r.EmailPerAddress, r.EmailPerSession, r.DeviceCodeEntry, r.DeviceAuthorization,
		r.ClientRegistration, r.Authorization, r.BackchannelLogout}
}
