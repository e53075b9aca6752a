// Command gatehouse is the all-in-one Gatehouse binary and its admin CLI.
//
//	gatehouse serve                       run all five services in one process
//	gatehouse user add|list|lock|unlock|set-password|deactivate|reactivate
//	gatehouse projections list|rebuild NAME [--max-rate N] [--background]
//	gatehouse homeserver sync
//	gatehouse registration-token add|list|revoke
//	gatehouse config generate|check
//	gatehouse migrate synapse [--check | --dry-run]
//	gatehouse credential admin|accounts|authorize|token|notify|web
//
// The admin commands talk to a running Gatehouse over its gRPC API
// (--grpc, default the configured gRPC address), so they work the same against
// the all-in-one process and a deployment that scales services separately;
// with --token they call as an administrator's token, the admin API's way.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

func main() {
	stop := cpuProfile(os.Getenv("GATEHOUSE_CPU_PROFILE"), os.Stderr)
	code := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cpuProfile writes a CPU profile of the whole command to path (none when
// path is empty): how the benchmarks see where an import's time goes
// (go tool pprof). It returns what ends the profile.
func cpuProfile(path string, stderr io.Writer) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: cpu profile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "gatehouse: cpu profile: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// usage is printed for `gatehouse help` and after a wrong command.
const usage = `usage: gatehouse <command> [flags]

commands:
  serve                                run every service in one process
  user add --username U [--password P | --password-file F] [--email E] [--admin] [--display-name N]
  user list [--status active|locked|deactivated]
  user lock USERNAME [--reason R]
  user unlock USERNAME
  user deactivate USERNAME [--erase]
  user reactivate USERNAME
  user set-password USERNAME [--password P | --password-file F]
  user audit [USERNAME]
  user reset-factors USERNAME          remove every passkey, authenticator app and recovery code (a lost second factor)
  user require-factor USERNAME [--off] require a second factor at sign-in (or lift an administrator's requirement)
  projections list                     checkpoints, versions, rebuilds under way (position/target, rate)
  projections rebuild NAME [--max-rate N] [--background]
                                       e.g. token.sessions: rebuilt beside the live tables, swapped in when caught up
  homeserver sync [--timeout D]        provision every user and device on the homeserver
  registration-token add [--uses N] [--expires D]   a token for account.registration: token
  registration-token list | revoke ID
  config generate [--synapse-config homeserver.yaml]
                                       print a configuration file with every default,
                                       or derived from Synapse's (what is not carried over is listed)
  config check [--config F]            validate a configuration file
  migrate synapse [--check | --dry-run] [--synapse-database URL] [--synapse-config homeserver.yaml]
                  [--format auto|text|json] [--ignore-missing-auth-providers] [--batch N] [--workers N]
                                       check a Synapse homeserver, then import its users, passwords,
                                       emails, SSO links, devices with their live tokens and
                                       registration tokens into the running Gatehouse (resumable:
                                       run it again after an interruption); --check only reports
                                       (exit 0 ok, 10 errors, 11 warnings), --dry-run writes nothing
  credential NAME                      print the gRPC credential of admin or a service (e.g. for grpcurl)

Every command takes --config F (env GATEHOUSE_CONFIG); admin commands take --grpc ADDR and
--token T (env GATEHOUSE_ADMIN_TOKEN): an administrator's OAuth or personal access token with
urn:gatehouse:admin, used instead of the credential derived from the internal secret.
`

// run dispatches a command line and returns the exit code: 0 success,
// 1 failure, 2 wrong usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stderr)
	case "user":
		return userCommand(ctx, rest, stdin, stdout, stderr)
	case "projections":
		return projectionsCommand(ctx, rest, stdout, stderr)
	case "homeserver":
		return homeserverCommand(ctx, rest, stdout, stderr)
	case "registration-token":
		return registrationTokenCommand(ctx, rest, stdout, stderr)
	case "config":
		return configCommand(rest, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, rest, stdout, stderr)
	case "credential":
		return credentialCommand(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}
