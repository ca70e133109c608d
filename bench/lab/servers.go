package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// MaxBytes bounds n in the HTTP servers' /bytes?n=N.
const MaxBytes = 1 << 36

// byteAt is the content of /bytes at offset k: 'a' + k%26, so a client can
// check a long transfer without keeping it.
func byteAt(k int64) byte { return 'a' + byte(k%26) }

// BytesBody reports whether b is the /bytes body at offset off.
func BytesBody(b []byte, off int64) bool {
	for i, c := range b {
		if c != byteAt(off+int64(i)) {
			return false
		}
	}
	return true
}

// handler answers GET / with "backend <name>\n" and GET /bytes?n=N with N
// bytes of the byteAt pattern; every answer carries X-Culvert-Backend.
func handler(name string) http.Handler {
	hello := []byte("backend " + name + "\n")
	var chunk [26 * 1260]byte // 32760 bytes, a whole number of periods
	for i := range chunk {
		chunk[i] = byteAt(int64(i))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Culvert-Backend", name)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Culvert-Backend", name)
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > MaxBytes {
			http.Error(w, fmt.Sprintf("n: want 0 to %d", int64(MaxBytes)), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	return mux
}

// serve runs an HTTP server on ln until the returned stop is called.
// stop may be called more than once; it waits briefly for requests in
// flight, then closes every connection.
func serve(ln net.Listener, h http.Handler) func() {
	// Handshake failures are what TLS tests provoke: not worth a log line.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
			<-done
		})
	}
}

// ServeHTTP starts an HTTP server in the host's namespace on addr (as for
// net.Listen "tcp4", e.g. ":80"): GET / answers "backend <name>\n", GET
// /bytes?n=N streams N bytes (N <= MaxBytes; see BytesBody) for long
// transfers. Lab.Down stops it too.
func (h *Host) ServeHTTP(addr, name string) (stop func(), err error) {
	ln, err := h.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: http %s: %w", h.Name, addr, err)
	}
	stop = serve(ln, handler(name))
	h.track(stop)
	return stop, nil
}

// ServeTLS is ServeHTTP over TLS with a fresh self-signed certificate
// (ECDSA P-256, DNS name <name>, and the listening IP when addr has one),
// returned in PEM, so that a client can check that it reached this very
// server (see ClientTLS).
func (h *Host) ServeTLS(addr, name string) (stop func(), certPEM []byte, err error) {
	var ip net.IP
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		ip = net.ParseIP(host)
	}
	cert, certPEM, err := selfSigned(name, ip)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: https %s: %w", h.Name, addr, err)
	}
	ln, err := h.Listen("tcp4", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: https %s: %w", h.Name, addr, err)
	}
	ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	stop = serve(ln, handler(name))
	h.track(stop)
	return stop, certPEM, nil
}

// selfSigned makes a self-signed certificate for name (and ip, if not nil).
func selfSigned(name string, ip net.IP) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"culvert lab"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{name},
	}
	if ip != nil && !ip.IsUnspecified() {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}

// ClientTLS returns a client configuration that trusts only the
// certificate in certPEM and expects it for name: a connection succeeds
// only if it reaches the server that ServeTLS(addr, name) started.
func ClientTLS(certPEM []byte, name string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return nil, errors.New("lab: no certificate in PEM")
	}
	return &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

// HTTPClient returns a client whose connections are made from the host's
// namespace, with tlsConf for https URLs (nil: the system roots, which
// know no lab certificate). Every request opens a new connection (no
// keep-alive), as load-balancing tests want, no proxy is used, and a
// request gives up after 10 s.
func (h *Host) HTTPClient(tlsConf *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:       h.DialContext,
			TLSClientConfig:   tlsConf,
			DisableKeepAlives: true,
		},
	}
}
