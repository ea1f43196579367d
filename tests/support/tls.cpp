#include "support/tls.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace coring_test {

namespace {

struct key_deleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct cert_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_deleter>;
using cert_ptr = std::unique_ptr<X509, cert_deleter>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

key_ptr new_key() {
  key_ptr k(EVP_EC_gen("P-256"));
  check(k != nullptr, "EC key");
  return k;
}

void add_ext(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, value);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, valid from `from` to `to` seconds from
// now, signed by `issuer`/`issuer_key` (null: by itself).
cert_ptr make_cert(EVP_PKEY* key, const char* cn, bool ca, long from, long to, X509* issuer, EVP_PKEY* issuer_key) {
  static long serial = 1;
  cert_ptr x(X509_new());
  check(x != nullptr, "X509_new");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), from);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), to);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* signer = issuer ? issuer : x.get();
  X509_set_issuer_name(x.get(), X509_get_subject_name(signer));
  add_ext(x.get(), signer, NID_subject_key_identifier, "hash");
  if (ca) {
    add_ext(x.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x.get(), signer, NID_basic_constraints, "CA:FALSE");
    add_ext(x.get(), signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    add_ext(x.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
    if (issuer) add_ext(x.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  check(X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return x;
}

void write_cert(const std::string& path, X509* x) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "open a PEM file for writing");
  const bool ok = PEM_write_X509(f, x) == 1;
  std::fclose(f);
  check(ok, "PEM_write_X509");
}

void write_key(const std::string& path, EVP_PKEY* k) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "open a PEM file for writing");
  const bool ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  check(ok, "PEM_write_PrivateKey");
}

constexpr long day = 24 * 3600;

cert_files leaf(const std::string& dir, const char* file, const char* cn, long from, long to, X509* issuer,
                EVP_PKEY* issuer_key) {
  key_ptr k = new_key();
  cert_ptr x = make_cert(k.get(), cn, false, from, to, issuer, issuer_key);
  cert_files out{dir + "/" + file + ".pem", dir + "/" + file + ".key"};
  write_cert(out.cert, x.get());
  write_key(out.key, k.get());
  return out;
}

struct owned_pki : test_pki {
  owned_pki() {
    char tmpl[] = "/tmp/coring-tls-XXXXXX";
    check(::mkdtemp(tmpl) != nullptr, "mkdtemp");
    dir = tmpl;
    key_ptr ca_key = new_key();
    cert_ptr ca_cert = make_cert(ca_key.get(), "coring test CA", true, -day, 30 * day, nullptr, nullptr);
    ca = dir + "/ca.pem";
    write_cert(ca, ca_cert.get());
    key_ptr other_key = new_key();
    cert_ptr other_cert = make_cert(other_key.get(), "nobody's CA", true, -day, 30 * day, nullptr, nullptr);

    server = leaf(dir, "server", "localhost", -day, 30 * day, ca_cert.get(), ca_key.get());
    client = leaf(dir, "client", "client", -day, 30 * day, ca_cert.get(), ca_key.get());
    expired = leaf(dir, "expired", "localhost", -2 * day, -day, ca_cert.get(), ca_key.get());
    untrusted = leaf(dir, "untrusted", "localhost", -day, 30 * day, other_cert.get(), other_key.get());
    self_signed = leaf(dir, "self_signed", "localhost", -day, 30 * day, nullptr, nullptr);
    missing = dir + "/missing.pem";
    not_pem = dir + "/not_pem.pem";
    FILE* f = std::fopen(not_pem.c_str(), "w");
    check(f != nullptr, "open a file for writing");
    std::fputs("this is not a certificate\n", f);
    std::fclose(f);
  }
  ~owned_pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

}  // namespace

const test_pki& pki() {
  static const owned_pki p;
  return p;
}

}  // namespace coring_test
