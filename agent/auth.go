package agent

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
)

// Role is what a credential may do.
type Role int

const (
	RoleRead  Role = iota + 1 // help, queryAllBiz, health, queryBizOps, metrics, logs
	RoleAdmin                 // everything
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// readCommands are the commands a read credential may run.
var readCommands = map[string]bool{"help": true, "queryAllBiz": true, "health": true, "queryBizOps": true, "metrics": true, "logs": true}

// Auth decides who may run which command.
type Auth struct {
	// Required makes every request present a credential. The base sets it for an agent listening beyond
	// loopback (unless told --insecure) and for --auth always.
	Required bool
	tokens   []token
	logger   *slog.Logger
}

type token struct {
	name string
	role Role
	sum  [32]byte
}

// NewAuth makes an authorizer; add tokens with AddToken.
func NewAuth(required bool, logger *slog.Logger) *Auth {
	if logger == nil {
		logger = slog.Default()
	}
	return &Auth{Required: required, logger: logger}
}

// AddToken accepts a bearer token with a role.
func (a *Auth) AddToken(name, secret string, role Role) {
	a.tokens = append(a.tokens, token{name: name, role: role, sum: sha256.Sum256([]byte(secret))})
}

// LoadTokens reads an operator's token file: one `ROLE TOKEN [NAME]` per line (ROLE read or admin), # comments.
func (a *Auth) LoadTokens(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return fmt.Errorf("tokens file %s:%d: want `ROLE TOKEN [NAME]`", path, n)
		}
		var role Role
		switch fields[0] {
		case "read":
			role = RoleRead
		case "admin":
			role = RoleAdmin
		default:
			return fmt.Errorf("tokens file %s:%d: role %q is not read or admin", path, n, fields[0])
		}
		if len(fields[1]) < 16 {
			return fmt.Errorf("tokens file %s:%d: the token is shorter than 16 characters", path, n)
		}
		name := fmt.Sprintf("%s:%d", path, n)
		if len(fields) > 2 {
			name = fields[2]
		}
		a.AddToken(name, fields[1], role)
	}
	return sc.Err()
}

// EnsureTokenFile reads the admin token in path, creating it (mode 0600) with a new random token first if it
// does not exist, and accepts it.
func (a *Auth) EnsureTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 32)
		rand.Read(b)
		secret := base64.RawURLEncoding.EncodeToString(b)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return "", fmt.Errorf("admin token %s: %w", path, err)
		}
		_, err = f.WriteString(secret + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("admin token %s: %w", path, err)
		}
		data = []byte(secret)
	} else if err != nil {
		return "", fmt.Errorf("admin token %s: %w", path, err)
	}
	secret := strings.TrimSpace(string(data))
	a.AddToken("data-dir token", secret, RoleAdmin)
	return secret, nil
}

// authorize says whether the request may run command, and why not. When credentials are not required (an
// agent on loopback, as Arklet), every request may run every command, whatever it presents.
func (a *Auth) authorize(r *http.Request, command string) (status int, why string) {
	if !a.Required {
		return 0, ""
	}
	role := Role(0)
	name := ""
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return http.StatusUnauthorized, "the Authorization header must be `Bearer TOKEN`"
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
		for _, t := range a.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
				role, name = t.role, t.name
			}
		}
		if role == 0 {
			return http.StatusUnauthorized, "the bearer token is not valid for this base"
		}
	} else if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		role, name = RoleAdmin, "client certificate "+r.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	if role == 0 {
		return http.StatusUnauthorized, "this agent requires a credential: send `Authorization: Bearer TOKEN` (kouple: --token, $KOUPLE_TOKEN, or the token file of the base's data dir)"
	}
	if role < RoleAdmin && !readCommands[command] {
		return http.StatusForbidden, fmt.Sprintf("the %s token %q may not run %s: use an admin token", role, name, command)
	}
	return 0, ""
}
