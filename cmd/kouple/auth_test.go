package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// authBase starts a base with extra flags and environment (HOME among them, so its default data dir and
// token file are the test's own).
func authBase(t *testing.T, home, agentAddr string, flags ...string) *baseProc {
	t.Helper()
	p := &baseProc{t: t, httpAddr: freeAddr(t), agtAddr: agentAddr, output: &syncBuffer{}, exited: make(chan struct{})}
	_, port, _ := net.SplitHostPort(agentAddr)
	p.gateway, p.agent = "http://"+p.httpAddr, "http://127.0.0.1:"+port
	args := append([]string{"base", "--http", p.httpAddr, "--agent", agentAddr, "--cache-dir", cacheDir()}, flags...)
	p.cmd = exec.Command(kouple(t), args...)
	p.cmd.Env = append(os.Environ(), "HOME="+home)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.exited:
			t.Fatalf("base exited: %v\n%s", p.exitErr, p.output)
		default:
		}
		if strings.Contains(p.output.String(), "kouple base ") {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("base did not start\n%s", p.output)
		}
	}
}

func post(t *testing.T, client *http.Client, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestAuthRefusals: each refusal with a real base, and the CLI finding the data dir's token by itself.
func TestAuthRefusals(t *testing.T) {
	home := t.TempDir()
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("# operator tokens\nread reader-token-0123456789 dashboard\n"), 0o600)
	b := authBase(t, home, freeAddr(t), "--auth", "always", "--tokens", tokens)
	admin, err := os.ReadFile(filepath.Join(home, ".kouple", "base", "token"))
	if err != nil {
		t.Fatalf("the base wrote no token into its default data dir: %v", err)
	}
	c := http.DefaultClient
	hello := artifactFile(t, "examples/hello", "1.0.0")
	install := `{"bizUrl":"file://` + hello + `"}`
	for _, tc := range []struct {
		name, cmd, token, body string
		status                 int
		want                   string
	}{
		{"no token", "queryAllBiz", "", "{}", 401, "this agent requires a credential"},
		{"wrong token", "queryAllBiz", "not-the-token-at-all", "{}", 401, "the bearer token is not valid"},
		{"read token, admin command", "installBiz", "reader-token-0123456789", install, 403, `the read token \"dashboard\" may not run installBiz: use an admin token`},
		{"read token, read command", "queryAllBiz", "reader-token-0123456789", "{}", 200, `"code":"SUCCESS"`},
		{"admin token", "installBiz", strings.TrimSpace(string(admin)), install, 200, `"code":"SUCCESS"`},
	} {
		status, body := post(t, c, b.agent+"/"+tc.cmd, tc.token, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s\nwant %d and %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	if !strings.Contains(b.output.String(), "request refused") || !strings.Contains(b.output.String(), "remote=127.0.0.1:") {
		t.Errorf("refusals are not logged with the caller's address:\n%s", b.output)
	}
	// The CLI finds the token of the default data dir by itself.
	cli := exec.Command(kouple(t), "status")
	cli.Env = append(os.Environ(), "HOME="+home, "KOUPLE_BASE="+b.agent, "KOUPLE_TOKEN=")
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(strings.Join(strings.Fields(string(out)), " "), "hello 1.0.0 ACTIVATED") {
		t.Errorf("kouple status with the data dir's token: %v\n%s", err, out)
	}
	cli = exec.Command(kouple(t), "status", "--token", "wrong-token-0123456789")
	cli.Env = append(os.Environ(), "HOME="+home, "KOUPLE_BASE="+b.agent)
	if out, err := cli.CombinedOutput(); err == nil || !strings.Contains(string(out), "the bearer token is not valid") {
		t.Errorf("kouple status --token wrong: %v\n%s", err, out)
	}
}

// TestAuthByListener: loopback takes requests without a credential by default; a listener on every address
// requires one, unless --insecure, which health reports.
func TestAuthByListener(t *testing.T) {
	b := authBase(t, t.TempDir(), freeAddr(t))
	if status, body := post(t, http.DefaultClient, b.agent+"/queryAllBiz", "", "{}"); status != 200 {
		t.Errorf("loopback without a token: %d %s", status, body)
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	b = authBase(t, t.TempDir(), "0.0.0.0:"+port)
	if status, body := post(t, http.DefaultClient, b.agent+"/queryAllBiz", "", "{}"); status != 401 {
		t.Errorf("0.0.0.0 without a token: %d %s", status, body)
	}
	_, port, _ = net.SplitHostPort(freeAddr(t))
	b = authBase(t, t.TempDir(), "0.0.0.0:"+port, "--insecure")
	status, body := post(t, http.DefaultClient, b.agent+"/health", "", "{}")
	if status != 200 || !strings.Contains(body, `"insecure":true`) || !strings.Contains(body, "INSECURE") {
		t.Errorf("--insecure health: %d %.300s", status, body)
	}
	if !strings.Contains(b.output.String(), "INSECURE: the agent listens beyond loopback") {
		t.Errorf("--insecure not said at start:\n%s", b.output)
	}
}

// TestMutualTLS: with --client-ca, a client without a certificate is refused; with one it is admitted.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "kouple test CA", dir, "ca")
	newCert(t, ca, caKey, "127.0.0.1", dir, "server")
	client, clientKey := newCert(t, ca, caKey, "operator", dir, "client")
	b := authBase(t, t.TempDir(), freeAddr(t), "--auth", "always", "--tls-cert", filepath.Join(dir, "server.pem"),
		"--tls-key", filepath.Join(dir, "server-key.pem"), "--client-ca", filepath.Join(dir, "ca.pem"))
	url := strings.Replace(b.agent, "http://", "https://", 1) + "/queryAllBiz"
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if status, body := post(t, without, url, "", "{}"); status != 0 {
		t.Errorf("without a client certificate: %d %s", status, body)
	}
	with := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{client.Raw}, PrivateKey: clientKey}}}}}
	if status, body := post(t, with, url, "", "{}"); status != 200 {
		t.Errorf("with a client certificate: %d %s", status, body)
	}
}

// newCert makes a certificate (a CA when parent is nil) and writes NAME.pem and NAME-key.pem into dir.
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return cert, key
}
