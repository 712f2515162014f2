// How to reach the Kubernetes API server: in-cluster (the pod's service
// account) or a kubeconfig file. Only what a read-only watcher needs:
// server URL, TLS trust, client certificate, bearer token.
#ifndef EXECMON_AGENT_K8S_KUBE_CONFIG_H_
#define EXECMON_AGENT_K8S_KUBE_CONFIG_H_

#include <sys/types.h>

#include <ctime>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace execmon {
namespace k8s {

inline constexpr absl::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  // "https://host:port" or with a path prefix; never a trailing '/'.
  std::string server;

  // Trust for the server's certificate: a PEM file, or PEM bytes (decoded
  // from certificate-authority-data). Both empty: the system's CAs.
  std::string ca_file;
  std::string ca_data;
  bool insecure_skip_tls_verify = false;

  // Client certificate authentication (PEM file or PEM bytes each).
  std::string client_cert_file;
  std::string client_cert_data;
  std::string client_key_file;
  std::string client_key_data;

  // Bearer token: a fixed one, or a file read again whenever it changes
  // (bound service account tokens rotate). token_file wins when both set.
  std::string token;
  std::string token_file;

  // Default namespace of the context (or the service account's namespace).
  std::string namespace_name;

  // Where this came from, for logs: "in-cluster" or "<path> context <name>".
  std::string source;
};

// In-cluster configuration from KUBERNETES_SERVICE_HOST/PORT and the
// service account files in kServiceAccountDir.
absl::StatusOr<KubeConfig> LoadInClusterConfig();

// The same, from explicit values (tests). `sa_dir` holds token, ca.crt and
// namespace. The token file must exist; ca.crt and namespace are optional.
absl::StatusOr<KubeConfig> LoadInClusterConfigFrom(absl::string_view host,
                                                   absl::string_view port,
                                                   absl::string_view sa_dir);

// Parses a kubeconfig file. `context` empty: its current-context. Relative
// file paths in it are resolved against the file's directory. Errors name
// the file and, where known, the line and column.
absl::StatusOr<KubeConfig> LoadKubeConfigFile(const std::string& path,
                                              absl::string_view context = "");

// Parses kubeconfig YAML text; `path` is used for error messages and to
// resolve relative file paths (may be empty: relative to the cwd).
absl::StatusOr<KubeConfig> ParseKubeConfig(absl::string_view yaml,
                                           absl::string_view path,
                                           absl::string_view context = "");

// The configuration an agent uses by default: `kubeconfig_path` if given;
// otherwise in-cluster when KUBERNETES_SERVICE_HOST is set; otherwise the
// first file of $KUBECONFIG, then ~/.kube/config.
absl::StatusOr<KubeConfig> LoadDefaultConfig(
    const std::string& kubeconfig_path = "", absl::string_view context = "");

// A bearer token that may live in a file that is replaced while we run.
// Get() stats the file and reads it again only when its identity, size or
// modification time changed (or after Invalidate(), e.g. on a 401).
// Thread-safe.
class BearerToken {
 public:
  BearerToken() = default;
  BearerToken(std::string token, std::string token_file)
      : static_token_(std::move(token)), file_(std::move(token_file)) {}
  BearerToken(const BearerToken&) = delete;
  BearerToken& operator=(const BearerToken&) = delete;

  // The current token; "" when none is configured.
  absl::StatusOr<std::string> Get();
  void Invalidate();
  // How many times the file was (re)read; for tests and metrics.
  int reads() const;

 private:
  const std::string static_token_;
  const std::string file_;
  mutable absl::Mutex mu_;
  std::string cached_ ABSL_GUARDED_BY(mu_);
  dev_t dev_ ABSL_GUARDED_BY(mu_) = 0;
  ino_t ino_ ABSL_GUARDED_BY(mu_) = 0;
  off_t size_ ABSL_GUARDED_BY(mu_) = -1;
  timespec mtime_ ABSL_GUARDED_BY(mu_) = {0, 0};
  bool valid_ ABSL_GUARDED_BY(mu_) = false;
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace k8s
}  // namespace execmon

#endif  // EXECMON_AGENT_K8S_KUBE_CONFIG_H_
