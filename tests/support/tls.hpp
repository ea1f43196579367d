#pragma once
// A throwaway PKI for TLS tests, made with OpenSSL's API when first asked
// for (P-256 keys, so it takes milliseconds) and written as PEM files into a
// temporary directory that is removed at exit:
//
//   const coring_test::test_pki& p = coring_test::pki();
//   auto server = net::tls_context::server({.cert_file = p.server.cert, .key_file = p.server.key});
//   auto client = net::tls_context::client({.ca_file = p.ca});
//
// Every certificate but self_signed names localhost and 127.0.0.1.

#include <string>

namespace coring_test {

/// A certificate file and its key file.
struct cert_files {
  std::string cert;
  std::string key;
};

struct test_pki {
  std::string dir;          // the temporary directory
  std::string ca;           // the trusted CA's certificate
  cert_files server;        // signed by ca, valid now
  cert_files client;        // signed by ca, subject CN=client
  cert_files expired;       // signed by ca, expired yesterday
  cert_files untrusted;     // signed by another CA nobody trusts
  cert_files self_signed;   // signed by its own key (not a CA), CN=localhost
  std::string missing;      // a path that does not exist
  std::string not_pem;      // a file that is not PEM
};

/// The process's test PKI (made on first call; thread-safe).
const test_pki& pki();

}  // namespace coring_test
