package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/nplab/nplab/lab"
)

var errNoFlush = apierrors.NewInternalError(errors.New("the connection cannot stream a watch"))

func sortStrings(s []string) { sort.Strings(s) }

// DefaultDir is where a running lab's kubeconfig is written.
const DefaultDir = "/run/nplab"

// Listen opens the endpoint's TCP listener: by default on 127.0.0.1, a
// port the kernel picks. A rootless nplab (package internal/userns) sets it
// to one that opens the listener in the host's network namespace, where
// the user's own kubectl reaches it.
var Listen = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// KubeconfigPath is the kubeconfig of lab name under dir ("" means
// DefaultDir): /run/nplab/<lab>.kubeconfig.
func KubeconfigPath(dir, name string) string {
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, name+".kubeconfig")
}

// Endpoint is a lab's running API endpoint.
type Endpoint struct {
	// URL is the server kubectl talks to: https://127.0.0.1:PORT.
	URL string
	// Kubeconfig is the path of the kubeconfig written for it (mode 0600).
	Kubeconfig string

	srv *http.Server
	ln  net.Listener
}

// Serve starts l's API endpoint on 127.0.0.1 (a port the kernel picks; the
// host's loopback only, so nothing outside the host, the lab's own
// namespaces included, can reach it) and writes its kubeconfig to
// KubeconfigPath(dir, l.Name()) with mode 0600: the server, a random
// bearer token every request must carry (so only who can read the file,
// root, can use the endpoint), and the context nplab-<lab> with namespace
// default. It serves HTTPS with a certificate made for this run (its
// certificate is the kubeconfig's certificate-authority-data), because
// client-go sends a bearer token only over TLS. Close stops it and removes
// the file.
func Serve(l *lab.Lab, dir string) (*Endpoint, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(b[:])
	cert, certPEM, err := selfSigned(l.Name())
	if err != nil {
		return nil, fmt.Errorf("lab %q: the API endpoint's certificate: %w", l.Name(), err)
	}
	tcp, err := Listen()
	if err != nil {
		return nil, fmt.Errorf("lab %q: the API endpoint: %w", l.Name(), err)
	}
	ln := tls.NewListener(tcp, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"}})
	e := &Endpoint{
		URL:        "https://" + tcp.Addr().String(),
		Kubeconfig: KubeconfigPath(dir, l.Name()),
		ln:         ln,
		srv:        &http.Server{Handler: New(l, token), ReadHeaderTimeout: 10 * time.Second},
	}
	if err := WriteKubeconfig(e.Kubeconfig, l.Name(), e.URL, token, certPEM); err != nil {
		ln.Close()
		return nil, err
	}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// Close stops the endpoint (open watches end) and removes its kubeconfig.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	if err != nil {
		err = e.srv.Close()
	}
	if rerr := os.Remove(e.Kubeconfig); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// selfSigned makes a certificate for 127.0.0.1, valid for a year.
func selfSigned(name string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "nplab-" + name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// WriteKubeconfig writes a kubeconfig for lab name at path, mode 0600
// (written to a temporary file and renamed, so a reader never sees half):
// server, bearer token and, for https, the server's certificate in PEM.
func WriteKubeconfig(path, name, server, token string, caPEM []byte) error {
	ctx := "nplab-" + name
	ca := ""
	if len(caPEM) > 0 {
		ca = "\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(caPEM)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s%[4]s
users:
- name: %[1]s
  user:
    token: %[3]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s
    namespace: default
current-context: %[1]s
`, ctx, server, token, ca)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+name+".kubeconfig-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(cfg); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
