// Command qrgo is quicreality's quic-go interop peer: one binary, an HTTP/3 server and client.
//
// It is built offline by scripts/setup.sh against Debian's quic-go 0.29 (golang-github-lucas-clemente-quic-go-dev)
// with Debian's Go in GOPATH mode (GO111MODULE=off, GOPATH=<build>:/usr/share/gocode).
//
// Server:
//
//	qrgo -mode server -addr 127.0.0.1:4433 -cert cert.pem -key key.pem -www DIR [-qlog-dir D] [-keylog F] [-cipher LIST] [-retry]
//
// serves the files of DIR, and GET /bytes/N answers N deterministic bytes: the byte at offset i is i mod 256
// (0x00 0x01 ... 0xff 0x00 ...). Once the UDP socket is bound it prints one JSON line on stdout:
// {"event":"listening","addr":"127.0.0.1:4433"} (use -addr 127.0.0.1:0 to let the kernel pick a port).
// SIGINT/SIGTERM close the server and flush the qlog files.
//
// Client:
//
//	qrgo -mode client [-insecure] [-ca FILE] [-keylog F] [-qlog-dir D] [-o DIR] [-cipher LIST] [-timeout 60s]
//	     [-resumption | -0rtt] URL...
//
// downloads each URL in turn over one HTTP/3 connection per host (-resumption: the first URL on one connection,
// the others on a second connection that resumes the first one's TLS session from this process's session cache;
// -0rtt: the same, and the second connection sends all its requests at once in 0-RTT), writes the body to DIR/<basename of the path>
// (index.html for "/", and nothing when -o is not given) and prints one JSON line per URL on stdout:
// {"url":...,"status":200,"bytes":N,"secs":0.123,"proto":"HTTP/3.0"} plus "file" and, on failure, "error".
// It exits 1 when any URL failed (transport error or status >= 400), 2 on usage errors.
//
// Key log: -keylog F, or else $SSLKEYLOGFILE (NSS key log format, appended).
// qlog: one file per connection in -qlog-dir (or else $QLOGDIR), named <odcid hex>_<client|server>.qlog;
// quic-go 0.29 writes "qlog_format":"NDJSON","qlog_version":"draft-02".
// -cipher restricts the TLS 1.3 cipher suites (comma separated: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
// TLS_CHACHA20_POLY1305_SHA256, or aes128/aes256/chacha20); quic-go 0.29's qtls honours tls.Config.CipherSuites
// for TLS 1.3 on both sides.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/http3"
	"github.com/lucas-clemente/quic-go/logging"
	"github.com/lucas-clemente/quic-go/qlog"
)

// maxBytes bounds GET /bytes/N so that a typo cannot make the server stream forever.
const maxBytes = 1 << 34

// ---- qlog files, flushed on close and closed for sure at exit ------------------------------------------------

type qlogFile struct {
	*bufio.Writer
	f    *os.File
	once sync.Once
}

func (q *qlogFile) Close() error {
	var err error
	q.once.Do(func() {
		if e := q.Writer.Flush(); e != nil {
			err = e
		}
		if e := q.f.Close(); e != nil && err == nil {
			err = e
		}
		openQlogs.Delete(q)
	})
	return err
}

var openQlogs sync.Map // *qlogFile -> struct{}

func closeAllQlogs() {
	openQlogs.Range(func(k, _ any) bool {
		_ = k.(*qlogFile).Close()
		return true
	})
}

func newTracer(dir string) logging.Tracer {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatalf("qlog dir: %v", err)
	}
	return qlog.NewTracer(func(p logging.Perspective, connID []byte) io.WriteCloser {
		role := "server"
		if p == logging.PerspectiveClient {
			role = "client"
		}
		name := filepath.Join(dir, fmt.Sprintf("%s_%s.qlog", hex.EncodeToString(connID), role))
		f, err := os.Create(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "qrgo: qlog: %v\n", err)
			return nil
		}
		q := &qlogFile{Writer: bufio.NewWriterSize(f, 1<<16), f: f}
		openQlogs.Store(q, struct{}{})
		return q
	})
}

// ---- TLS helpers --------------------------------------------------------------------------------------------

func keyLogWriter(flagPath string) io.Writer {
	p := flagPath
	if p == "" {
		p = os.Getenv("SSLKEYLOGFILE")
	}
	if p == "" {
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fatalf("keylog: %v", err)
	}
	return f // unbuffered: every line is on disk as soon as it is written
}

var cipherNames = map[string]uint16{
	"TLS_AES_128_GCM_SHA256":       tls.TLS_AES_128_GCM_SHA256,
	"TLS_AES_256_GCM_SHA384":       tls.TLS_AES_256_GCM_SHA384,
	"TLS_CHACHA20_POLY1305_SHA256": tls.TLS_CHACHA20_POLY1305_SHA256,
	"AES128":                       tls.TLS_AES_128_GCM_SHA256,
	"AES256":                       tls.TLS_AES_256_GCM_SHA384,
	"CHACHA20":                     tls.TLS_CHACHA20_POLY1305_SHA256,
}

func parseCiphers(s string) []uint16 {
	if s == "" {
		return nil
	}
	var out []uint16
	for _, name := range strings.Split(s, ",") {
		id, ok := cipherNames[strings.ToUpper(strings.TrimSpace(name))]
		if !ok {
			usagef("unknown cipher %q", name)
		}
		out = append(out, id)
	}
	return out
}

// ---- server -------------------------------------------------------------------------------------------------

type handler struct{ www string }

// serveFile serves www/<path> (a directory means its index.html). Unlike http.FileServer it
// never redirects (FileServer answers /index.html with a 301 to ./).
func (h handler) serveFile(w http.ResponseWriter, r *http.Request) {
	if h.www == "" {
		http.NotFound(w, r)
		return
	}
	full := filepath.Join(h.www, filepath.FromSlash(path.Clean("/"+r.URL.Path)))
	f, err := os.Open(full)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		f.Close()
		if f, err = os.Open(filepath.Join(full, "index.html")); err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, err = f.Stat()
	}
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/bytes/") {
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, "bad byte count", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		if r.Method == http.MethodHead {
			return
		}
		var block [1 << 16]byte // 65536 is a multiple of 256, so every block is the same
		for i := range block {
			block[i] = byte(i)
		}
		for n > 0 {
			c := int64(len(block))
			if n < c {
				c = n
			}
			if _, err := w.Write(block[:c]); err != nil {
				return
			}
			n -= c
		}
		return
	}
	h.serveFile(w, r)
}

func runServer(addr, certFile, keyFile, www, qlogDir, keylog, ciphers string, retry bool) {
	if certFile == "" || keyFile == "" {
		usagef("server needs -cert and -key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fatalf("load cert/key: %v", err)
	}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		KeyLogWriter: keyLogWriter(keylog),
		CipherSuites: parseCiphers(ciphers),
		MinVersion:   tls.VersionTLS13,
	}
	quicConf := &quic.Config{Tracer: newTracer(qlogDir), MaxIdleTimeout: 30 * time.Second}
	if retry {
		quicConf.RequireAddressValidation = func(net.Addr) bool { return true }
	}
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		fatalf("resolve %s: %v", addr, err)
	}
	conn, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		fatalf("listen %s: %v", addr, err)
	}
	srv := &http3.Server{TLSConfig: tlsConf, QuicConfig: quicConf, Handler: handler{www: www}}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(conn) }()
	line, _ := json.Marshal(map[string]string{"event": "listening", "addr": conn.LocalAddr().String()})
	fmt.Println(string(line))

	exit := 0
	select {
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "qrgo: %v: shutting down\n", s)
	case err := <-done:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "qrgo: serve: %v\n", err)
			exit = 1
		}
	}
	_ = srv.Close()
	time.Sleep(100 * time.Millisecond) // let connection tracers see the close
	_ = conn.Close()
	closeAllQlogs()
	os.Exit(exit)
}

// ---- client -------------------------------------------------------------------------------------------------

type result struct {
	URL    string  `json:"url"`
	Status int     `json:"status"`
	Bytes  int64   `json:"bytes"`
	Secs   float64 `json:"secs"`
	Proto  string  `json:"proto"`
	File   string  `json:"file,omitempty"`
	Error  string  `json:"error,omitempty"`
}

func outName(u *url.URL) string {
	b := path.Base(u.Path)
	if b == "/" || b == "." || b == "" {
		return "index.html"
	}
	return b
}

func fetch(client *http.Client, raw, outDir string, timeout time.Duration, method string) result {
	r := result{URL: raw}
	u, err := url.Parse(raw)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, raw, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.Error = err.Error()
		r.Secs = time.Since(start).Seconds()
		return r
	}
	defer resp.Body.Close()
	r.Status, r.Proto = resp.StatusCode, resp.Proto
	var sink io.Writer = io.Discard
	if outDir != "" {
		r.File = filepath.Join(outDir, outName(u))
		f, err := os.Create(r.File)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 1<<20)
		defer bw.Flush()
		sink = bw
	}
	r.Bytes, err = io.Copy(sink, resp.Body)
	r.Secs = time.Since(start).Seconds()
	if err != nil {
		r.Error = err.Error()
	} else if r.Status >= 400 {
		r.Error = resp.Status
	}
	return r
}

// fetchBatch fetches urls over the RoundTripper's connection: one after the other, or all at once (parallel,
// which is what gets every request of a resumed connection into 0-RTT). Results come back in URL order.
func fetchBatch(client *http.Client, urls []string, outDir string, timeout time.Duration, method string,
	parallel bool) []result {
	out := make([]result, len(urls))
	if !parallel {
		for i, u := range urls {
			out[i] = fetch(client, u, outDir, timeout, method)
		}
		return out
	}
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			out[i] = fetch(client, u, outDir, timeout, method)
		}(i, u)
	}
	wg.Wait()
	return out
}

func runClient(urls []string, insecure bool, caFile, keylog, qlogDir, outDir, ciphers string, timeout time.Duration,
	resume, zeroRTT bool) {
	if len(urls) == 0 {
		usagef("client needs at least one URL")
	}
	tlsConf := &tls.Config{
		InsecureSkipVerify: insecure,
		KeyLogWriter:       keyLogWriter(keylog),
		CipherSuites:       parseCiphers(ciphers),
		MinVersion:         tls.VersionTLS13,
	}
	// -resumption / -0rtt: the first URL on one connection, the others on a second one that resumes its session
	// (the ticket stays in this process's session cache; quic-go 0.29 cannot export it to a file)
	batches := [][]string{urls}
	if resume || zeroRTT {
		if len(urls) < 2 {
			usagef("-resumption and -0rtt need at least 2 URLs")
		}
		tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		batches = [][]string{urls[:1], urls[1:]}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			fatalf("read -ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fatalf("no certificate in %s", caFile)
		}
		tlsConf.RootCAs = pool
	}
	if outDir != "" {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			fatalf("-o: %v", err)
		}
	}
	rt := &http3.RoundTripper{
		TLSClientConfig: tlsConf,
		QuicConfig:      &quic.Config{Tracer: newTracer(qlogDir), MaxIdleTimeout: 30 * time.Second},
	}
	client := &http.Client{Transport: rt}
	failed := false
	enc := json.NewEncoder(os.Stdout)
	for i, batch := range batches {
		method := http.MethodGet
		if i > 0 {
			_ = rt.Close() // the next request dials a new connection, resuming the cached session
			time.Sleep(50 * time.Millisecond)
			if zeroRTT {
				method = http3.MethodGet0RTT // sent at once, in 0-RTT packets
			}
		}
		for _, r := range fetchBatch(client, batch, outDir, timeout, method, i > 0 && zeroRTT) {
			if r.Error != "" {
				failed = true
			}
			_ = enc.Encode(r)
		}
	}
	_ = rt.Close()
	time.Sleep(50 * time.Millisecond) // connection close runs the tracers' Close
	closeAllQlogs()
	if failed {
		os.Exit(1)
	}
}

// ---- main ---------------------------------------------------------------------------------------------------

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "qrgo: "+format+"\n", args...)
	closeAllQlogs()
	os.Exit(1)
}

func usagef(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "qrgo: "+format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}

func main() {
	mode := flag.String("mode", "client", "server or client")
	addr := flag.String("addr", "127.0.0.1:4433", "server: UDP address to listen on (port 0 = any free port)")
	cert := flag.String("cert", "", "server: certificate chain (PEM)")
	key := flag.String("key", "", "server: private key (PEM)")
	www := flag.String("www", "", "server: directory to serve")
	retry := flag.Bool("retry", false, "server: send a Retry to every new connection")
	insecure := flag.Bool("insecure", false, "client: do not verify the server certificate")
	ca := flag.String("ca", "", "client: CA certificate(s) to verify the server with (PEM)")
	outDir := flag.String("o", "", "client: directory to write downloaded bodies to")
	timeout := flag.Duration("timeout", 60*time.Second, "client: timeout per URL")
	keylog := flag.String("keylog", "", "write TLS secrets here (default: $SSLKEYLOGFILE)")
	qlogDir := flag.String("qlog-dir", "", "write one qlog per connection here (default: $QLOGDIR)")
	ciphers := flag.String("cipher", "", "restrict TLS 1.3 cipher suites (comma separated)")
	resume := flag.Bool("resumption", false, "client: first URL on one connection, the others on a second one that "+
		"resumes its TLS session")
	zeroRTT := flag.Bool("0rtt", false, "client: as -resumption, and the second connection sends its requests in 0-RTT")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: qrgo -mode server -addr HOST:PORT -cert F -key F -www DIR [opts]\n"+
			"       qrgo -mode client [opts] URL...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *qlogDir == "" {
		*qlogDir = os.Getenv("QLOGDIR")
	}
	switch *mode {
	case "server":
		runServer(*addr, *cert, *key, *www, *qlogDir, *keylog, *ciphers, *retry)
	case "client":
		runClient(flag.Args(), *insecure, *ca, *keylog, *qlogDir, *outDir, *ciphers, *timeout, *resume, *zeroRTT)
	default:
		usagef("unknown -mode %q", *mode)
	}
}
