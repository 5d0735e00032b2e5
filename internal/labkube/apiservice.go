package labkube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// Pods reach the API server as every in-cluster client does: at the
// kubernetes Service's ClusterIP (KUBERNETES_SERVICE_HOST, 10.0.0.1),
// which kube-proxy sends to the Service's endpoint, the API server's
// advertise address, and they verify its certificate against the CA in
// their ServiceAccount volume (kube-root-ca.crt, which
// kube-controller-manager publishes). The lab's serving certificate
// names only the cp host's own addresses, not 10.0.0.1, and its CA's key
// is not kept.
//
// So the API server advertises a second address of the cp host,
// APIServiceAddr, and serves there (tls-sni-cert-key with that IP as its
// name: with no SNI, the API server picks the certificate by the address
// the connection arrived at) a certificate of a CA of our own for
// 10.0.0.1 and the kubernetes Service's names. kube-controller-manager
// publishes that CA to the pods. Everything else keeps reaching the API
// server at the cp host's address with the lab's certificate.

// APIServiceAddr is the API server's advertise address: the kubernetes
// Service's endpoint, a second address of the cp host.
var APIServiceAddr = netip.MustParseAddr("198.51.100.3")

// kubernetesServiceIP is the kubernetes Service's ClusterIP: the first
// address of ServiceNetwork.
var kubernetesServiceIP = ServiceNetwork.Addr().Next()

// inClusterAPI is the certificate and CA that pods see.
type inClusterAPI struct {
	caFile, certFile, keyFile string
}

// setUpInClusterAPI adds APIServiceAddr to the cp host and writes the
// in-cluster CA and serving certificate into dir. It returns the API
// server flags that serve them.
func setUpInClusterAPI(ctx context.Context, cp *labnet.Host, dir string) (inClusterAPI, map[string]string, error) {
	a := inClusterAPI{
		caFile:   filepath.Join(dir, "in-cluster-ca.crt"),
		certFile: filepath.Join(dir, "in-cluster-apiserver.crt"),
		keyFile:  filepath.Join(dir, "in-cluster-apiserver.key"),
	}
	if _, err := cp.Run(ctx, "ip", "address", "replace", APIServiceAddr.String()+"/32", "dev", cp.IfName); err != nil {
		return a, nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return a, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ironlb-lab-in-cluster-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return a, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return a, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return a, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kubernetes"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses:  []net.IP{kubernetesServiceIP.AsSlice(), APIServiceAddr.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return a, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return a, nil, err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
		perm      os.FileMode
	}{{a.caFile, "CERTIFICATE", caDER, 0o644}, {a.certFile, "CERTIFICATE", der, 0o644}, {a.keyFile, "EC PRIVATE KEY", keyDER, 0o600}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return a, nil, err
		}
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.perm); err != nil {
			return a, nil, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return a, map[string]string{
		"bind-address":      "0.0.0.0",
		"advertise-address": APIServiceAddr.String(),
		"tls-sni-cert-key":  a.certFile + "," + a.keyFile + ":" + APIServiceAddr.String(),
	}, nil
}
