package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for 127.0.0.1 usable by both servers and
// clients.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// offer makes a client present cert even when the server asks for
// certificates from other authorities (Go's client would otherwise send
// none).
func offer(cert tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
}

func TestMutualTLS(t *testing.T) {
	ca, evil := newTestCA(t, "trellis test CA"), newTestCA(t, "another CA")
	serverTLS := &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "node2")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool,
		MinVersion:   tls.VersionTLS13,
	}
	good := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "node1")}, RootCAs: ca.pool}
	tests := []struct {
		name      string
		client    *tls.Config // nil: plain TCP
		dialErr   string      // "" for success
		serverLog string      // the acceptor's logged reason
	}{
		{name: "mutual auth", client: good},
		{
			name:      "client without a certificate",
			client:    &tls.Config{RootCAs: ca.pool},
			dialErr:   "certificate required",
			serverLog: "client didn't provide a certificate",
		},
		{
			name:      "client certificate from another CA",
			client:    &tls.Config{GetClientCertificate: offer(evil.issue(t, "intruder")), RootCAs: ca.pool},
			dialErr:   "unknown certificate authority",
			serverLog: "certificate signed by unknown authority",
		},
		{
			name:      "server certificate from another CA",
			client:    &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "node1")}, RootCAs: evil.pool},
			dialErr:   "certificate signed by unknown authority",
			serverLog: "TLS",
		},
		{
			name:      "plain TCP client",
			dialErr:   "handshake",
			serverLog: "TLS",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			logs := newLogRecorder()
			lcfg := testConfig(2, logs)
			lcfg.TLS = serverTLS
			l := listen(t, lcfg)
			dcfg := testConfig(1, nil)
			dcfg.TLS = tt.client
			d, err := Dial(ctxT(t), l.Addr().String(), dcfg, 2)
			if tt.dialErr != "" {
				if err == nil {
					d.Abort(nil)
					t.Fatal("Dial succeeded")
				}
				var he *HandshakeError
				if !errors.As(err, &he) || !strings.Contains(err.Error(), tt.dialErr) {
					t.Errorf("Dial: %v, want a *HandshakeError saying %q", err, tt.dialErr)
				}
				logs.waitFor(t, "handshake failed", tt.serverLog)
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			closeAtEnd(t, d)
			a := accept(t, l)
			closeAtEnd(t, a)
			if _, ok := a.nc.(*tls.Conn); !ok {
				t.Fatalf("the accepted connection is a %T", a.nc)
			}
			state := a.nc.(*tls.Conn).ConnectionState()
			if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "node1" {
				t.Errorf("the acceptor did not verify the client certificate: %+v", state.PeerCertificates)
			}
			ar := newRecorder(1)
			d.Start(newRecorder(1))
			a.Start(ar)
			payload := make([]byte, 3*MaxFramePayload)
			if err := d.Send(ctxT(t), 1, 5, bufferOf(payload)); err != nil {
				t.Fatal(err)
			}
			if m := ar.next(t); m.id != 5 || len(m.payload) != len(payload) {
				t.Errorf("got message %d of %d bytes", m.id, len(m.payload))
			}
			// A graceful close over TLS ends with a close_notify.
			if err := d.Close(ctxT(t)); err != nil {
				t.Error(err)
			}
			if err := ar.waitClosed(t); !errors.Is(err, ErrPeerGone) {
				t.Errorf("peer's HandleClosed(%v), want ErrPeerGone", err)
			}
		})
	}
}
