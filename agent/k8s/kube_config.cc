#include "agent/k8s/kube_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/mark.h"
#include "yaml-cpp/yaml.h"

namespace execmon {
namespace k8s {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string what = absl::StrCat("cannot read ", path, ": ", strerror(err));
    if (err == ENOENT) return absl::NotFoundError(what);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(what);
    return absl::UnavailableError(what);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return absl::UnavailableError(absl::StrCat("error reading ", path));
  return buf.str();
}

std::string DirName(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return "";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string Resolve(absl::string_view base_dir, const std::string& file) {
  if (file.empty() || file[0] == '/' || base_dir.empty()) return file;
  return absl::StrCat(base_dir, "/", file);
}

// Errors point at the file and, when the node has a position, line:col.
class ConfigErrors {
 public:
  explicit ConfigErrors(absl::string_view path)
      : path_(path.empty() ? "<kubeconfig>" : std::string(path)) {}

  absl::Status At(const YAML::Mark& mark, absl::string_view msg) const {
    if (mark.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": ", msg));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ":", mark.line + 1, ":", mark.column + 1, ": ", msg));
  }
  absl::Status At(const YAML::Node& node, absl::string_view msg) const {
    YAML::Mark mark = YAML::Mark::null_mark();
    if (node.IsDefined()) mark = node.Mark();
    return At(mark, msg);
  }
  absl::Status File(absl::string_view msg) const {
    return At(YAML::Mark::null_mark(), msg);
  }

 private:
  std::string path_;
};

// node[key] for a map node; an undefined node otherwise or when absent.
YAML::Node Child(const YAML::Node& node, const char* key) {
  if (!node.IsDefined() || !node.IsMap())
    return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node child = node[key];
  if (!child.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
  return child;
}

absl::StatusOr<std::string> GetString(const ConfigErrors& errors,
                                      const YAML::Node& node, const char* key) {
  YAML::Node child = Child(node, key);
  if (!child.IsDefined() || child.IsNull()) return std::string();
  if (!child.IsScalar()) {
    return errors.At(child, absl::StrCat("\"", key, "\" must be a string"));
  }
  return child.Scalar();
}

absl::StatusOr<bool> GetBool(const ConfigErrors& errors, const YAML::Node& node,
                             const char* key) {
  YAML::Node child = Child(node, key);
  if (!child.IsDefined() || child.IsNull()) return false;
  bool value = false;
  if (!child.IsScalar() || !YAML::convert<bool>::decode(child, value)) {
    return errors.At(child,
                     absl::StrCat("\"", key, "\" must be true or false"));
  }
  return value;
}

absl::StatusOr<std::string> DecodeData(const ConfigErrors& errors,
                                       const YAML::Node& node,
                                       const char* key) {
  absl::StatusOr<std::string> encoded = GetString(errors, node, key);
  if (!encoded.ok() || encoded->empty()) return encoded;
  std::string stripped;
  for (char c : *encoded) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) stripped += c;
  }
  std::string decoded;
  if (!absl::Base64Unescape(stripped, &decoded) || decoded.empty()) {
    return errors.At(Child(node, key),
                     absl::StrCat("\"", key, "\" is not valid base64"));
  }
  return decoded;
}

// The entry named `name` of a kubeconfig list ("clusters", "users",
// "contexts"): returns its `field` member (a map).
absl::StatusOr<YAML::Node> FindNamed(const ConfigErrors& errors,
                                     const YAML::Node& root, const char* list,
                                     const char* field, absl::string_view name,
                                     absl::string_view referrer) {
  YAML::Node seq = Child(root, list);
  if (seq.IsDefined() && !seq.IsNull() && !seq.IsSequence()) {
    return errors.At(seq, absl::StrCat("\"", list, "\" must be a list"));
  }
  if (seq.IsDefined() && seq.IsSequence()) {
    for (const YAML::Node& entry : seq) {
      if (!entry.IsMap()) {
        return errors.At(
            entry, absl::StrCat("entries of \"", list, "\" must be maps"));
      }
      absl::StatusOr<std::string> entry_name = GetString(errors, entry, "name");
      if (!entry_name.ok()) return entry_name.status();
      if (*entry_name != name) continue;
      YAML::Node value = Child(entry, field);
      if (!value.IsDefined() || value.IsNull()) {
        return errors.At(entry, absl::StrCat(list, " entry \"", name,
                                             "\" has no \"", field, "\""));
      }
      if (!value.IsMap()) {
        return errors.At(value, absl::StrCat("\"", field, "\" must be a map"));
      }
      return value;
    }
  }
  return errors.At(YAML::Mark::null_mark(),
                   absl::StrCat(referrer, " refers to ", field, " \"", name,
                                "\", which is not in \"", list, "\""));
}

std::string ServerFromHostPort(absl::string_view host, absl::string_view port) {
  bool v6 = absl::StrContains(host, ':') && !absl::StartsWith(host, "[");
  return absl::StrCat("https://", v6 ? "[" : "", host, v6 ? "]" : "", ":",
                      port);
}

absl::StatusOr<KubeConfig> ParseRoot(const ConfigErrors& errors,
                                     const YAML::Node& root,
                                     absl::string_view path,
                                     absl::string_view context_name) {
  if (!root.IsDefined() || root.IsNull())
    return errors.File("empty kubeconfig");
  if (!root.IsMap()) return errors.At(root, "a kubeconfig must be a map");
  absl::StatusOr<std::string> kind = GetString(errors, root, "kind");
  if (!kind.ok()) return kind.status();
  if (!kind->empty() && *kind != "Config") {
    return errors.At(
        Child(root, "kind"),
        absl::StrCat("kind is \"", *kind, "\", expected \"Config\""));
  }

  std::string context(context_name);
  std::string referrer = "--context";
  if (context.empty()) {
    absl::StatusOr<std::string> current =
        GetString(errors, root, "current-context");
    if (!current.ok()) return current.status();
    if (current->empty()) {
      return errors.File("no context given and no \"current-context\" set");
    }
    context = *current;
    referrer = "current-context";
  }
  absl::StatusOr<YAML::Node> ctx =
      FindNamed(errors, root, "contexts", "context", context, referrer);
  if (!ctx.ok()) return ctx.status();

  absl::StatusOr<std::string> cluster_name = GetString(errors, *ctx, "cluster");
  if (!cluster_name.ok()) return cluster_name.status();
  absl::StatusOr<std::string> user_name = GetString(errors, *ctx, "user");
  if (!user_name.ok()) return user_name.status();
  absl::StatusOr<std::string> ns = GetString(errors, *ctx, "namespace");
  if (!ns.ok()) return ns.status();
  if (cluster_name->empty()) {
    return errors.At(
        *ctx, absl::StrCat("context \"", context, "\" names no cluster"));
  }

  KubeConfig config;
  config.namespace_name = ns->empty() ? "default" : *ns;
  config.source =
      absl::StrCat(path.empty() ? "<kubeconfig>" : path, " context ", context);
  std::string base = DirName(path);

  // Cluster.
  absl::StatusOr<YAML::Node> cluster =
      FindNamed(errors, root, "clusters", "cluster", *cluster_name,
                absl::StrCat("context \"", context, "\""));
  if (!cluster.ok()) return cluster.status();
  absl::StatusOr<std::string> server = GetString(errors, *cluster, "server");
  if (!server.ok()) return server.status();
  if (server->empty()) {
    return errors.At(*cluster, absl::StrCat("cluster \"", *cluster_name,
                                            "\" has no \"server\""));
  }
  if (!absl::StartsWith(*server, "https://") &&
      !absl::StartsWith(*server, "http://")) {
    return errors.At(Child(*cluster, "server"),
                     absl::StrCat("server \"", *server,
                                  "\" must be an http:// or https:// URL"));
  }
  config.server = std::string(absl::StripSuffix(*server, "/"));
  absl::StatusOr<std::string> ca_file =
      GetString(errors, *cluster, "certificate-authority");
  if (!ca_file.ok()) return ca_file.status();
  absl::StatusOr<std::string> ca_data =
      DecodeData(errors, *cluster, "certificate-authority-data");
  if (!ca_data.ok()) return ca_data.status();
  if (!ca_file->empty() && !ca_data->empty()) {
    return errors.At(*cluster,
                     "certificate-authority and "
                     "certificate-authority-data are both set");
  }
  config.ca_file = Resolve(base, *ca_file);
  config.ca_data = *std::move(ca_data);
  absl::StatusOr<bool> insecure =
      GetBool(errors, *cluster, "insecure-skip-tls-verify");
  if (!insecure.ok()) return insecure.status();
  config.insecure_skip_tls_verify = *insecure;
  if (config.insecure_skip_tls_verify &&
      (!config.ca_file.empty() || !config.ca_data.empty())) {
    return errors.At(*cluster,
                     "insecure-skip-tls-verify cannot be combined "
                     "with a certificate authority");
  }

  // User (optional: anonymous access).
  if (user_name->empty()) return config;
  absl::StatusOr<YAML::Node> user =
      FindNamed(errors, root, "users", "user", *user_name,
                absl::StrCat("context \"", context, "\""));
  if (!user.ok()) return user.status();

  absl::StatusOr<std::string> cert_file =
      GetString(errors, *user, "client-certificate");
  if (!cert_file.ok()) return cert_file.status();
  absl::StatusOr<std::string> cert_data =
      DecodeData(errors, *user, "client-certificate-data");
  if (!cert_data.ok()) return cert_data.status();
  absl::StatusOr<std::string> key_file = GetString(errors, *user, "client-key");
  if (!key_file.ok()) return key_file.status();
  absl::StatusOr<std::string> key_data =
      DecodeData(errors, *user, "client-key-data");
  if (!key_data.ok()) return key_data.status();
  if (!cert_file->empty() && !cert_data->empty()) {
    return errors.At(*user,
                     "client-certificate and client-certificate-data "
                     "are both set");
  }
  if (!key_file->empty() && !key_data->empty()) {
    return errors.At(*user, "client-key and client-key-data are both set");
  }
  bool has_cert = !cert_file->empty() || !cert_data->empty();
  bool has_key = !key_file->empty() || !key_data->empty();
  if (has_cert != has_key) {
    return errors.At(
        *user, has_cert ? "client certificate given without a client key"
                        : "client key given without a client certificate");
  }
  config.client_cert_file = Resolve(base, *cert_file);
  config.client_cert_data = *std::move(cert_data);
  config.client_key_file = Resolve(base, *key_file);
  config.client_key_data = *std::move(key_data);

  absl::StatusOr<std::string> token = GetString(errors, *user, "token");
  if (!token.ok()) return token.status();
  absl::StatusOr<std::string> token_file =
      GetString(errors, *user, "tokenFile");
  if (!token_file.ok()) return token_file.status();
  config.token = *token;
  config.token_file = Resolve(base, *token_file);

  bool has_token = !config.token.empty() || !config.token_file.empty();
  if (!has_cert && !has_token) {
    for (const char* unsupported : {"exec", "auth-provider", "username"}) {
      YAML::Node n = Child(*user, unsupported);
      if (n.IsDefined() && !n.IsNull()) {
        return errors.At(
            n, absl::StrCat("user \"", *user_name, "\": \"", unsupported,
                            "\" credentials are not supported; use a token, "
                            "a token file or a client certificate"));
      }
    }
  }
  return config;
}

}  // namespace

absl::StatusOr<KubeConfig> ParseKubeConfig(absl::string_view yaml,
                                           absl::string_view path,
                                           absl::string_view context) {
  ConfigErrors errors(path);
  // yaml-cpp reports both syntax and type errors by exception; none may
  // leave this function.
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    return ParseRoot(errors, root, path, context);
  } catch (const YAML::Exception& e) {
    return errors.At(e.mark, e.msg);
  } catch (const std::exception& e) {
    return errors.File(e.what());
  }
}

absl::StatusOr<KubeConfig> LoadKubeConfigFile(const std::string& path,
                                              absl::string_view context) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("kubeconfig: ", text.status().message()));
  }
  return ParseKubeConfig(*text, path, context);
}

absl::StatusOr<KubeConfig> LoadInClusterConfigFrom(absl::string_view host,
                                                   absl::string_view port,
                                                   absl::string_view sa_dir) {
  if (host.empty() || port.empty()) {
    return absl::FailedPreconditionError(
        "not running in a cluster: KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be set");
  }
  KubeConfig config;
  config.server = ServerFromHostPort(host, port);
  config.token_file = absl::StrCat(sa_dir, "/token");
  // The token must be there now; it is re-read whenever it changes.
  absl::StatusOr<std::string> token = ReadFile(config.token_file);
  if (!token.ok()) {
    return absl::Status(token.status().code(),
                        absl::StrCat("in-cluster: service account token: ",
                                     token.status().message()));
  }
  std::string ca = absl::StrCat(sa_dir, "/ca.crt");
  struct stat st;
  if (stat(ca.c_str(), &st) == 0) config.ca_file = ca;
  absl::StatusOr<std::string> ns = ReadFile(absl::StrCat(sa_dir, "/namespace"));
  config.namespace_name =
      ns.ok() ? std::string(absl::StripAsciiWhitespace(*ns)) : "default";
  config.source = "in-cluster";
  return config;
}

absl::StatusOr<KubeConfig> LoadInClusterConfig() {
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  return LoadInClusterConfigFrom(host ? host : "", port ? port : "",
                                 kServiceAccountDir);
}

absl::StatusOr<KubeConfig> LoadDefaultConfig(const std::string& kubeconfig_path,
                                             absl::string_view context) {
  if (!kubeconfig_path.empty())
    return LoadKubeConfigFile(kubeconfig_path, context);
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  if (host != nullptr && *host != '\0' && context.empty()) {
    return LoadInClusterConfig();
  }
  const char* env = getenv("KUBECONFIG");
  if (env != nullptr && *env != '\0') {
    for (absl::string_view p : absl::StrSplit(env, ':', absl::SkipEmpty())) {
      return LoadKubeConfigFile(std::string(p), context);
    }
  }
  const char* home = getenv("HOME");
  if (home != nullptr && *home != '\0') {
    std::string p = absl::StrCat(home, "/.kube/config");
    struct stat st;
    if (stat(p.c_str(), &st) == 0) return LoadKubeConfigFile(p, context);
  }
  return absl::NotFoundError(
      "no Kubernetes configuration: not in a cluster (KUBERNETES_SERVICE_HOST "
      "unset), no kubeconfig given, $KUBECONFIG unset, no ~/.kube/config");
}

// ---------------------------------------------------------------------------
// BearerToken

absl::StatusOr<std::string> BearerToken::Get() {
  if (file_.empty()) return static_token_;
  absl::MutexLock lock(&mu_);
  struct stat st;
  if (stat(file_.c_str(), &st) != 0) {
    int err = errno;
    // A rotation in progress (symlink swap) is brief: keep the last token.
    if (valid_) return cached_;
    return absl::UnavailableError(
        absl::StrCat("token file ", file_, ": ", strerror(err)));
  }
  if (valid_ && st.st_dev == dev_ && st.st_ino == ino_ && st.st_size == size_ &&
      st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec) {
    return cached_;
  }
  absl::StatusOr<std::string> text = ReadFile(file_);
  if (!text.ok()) {
    if (valid_) return cached_;
    return absl::Status(text.status().code(),
                        absl::StrCat("token file: ", text.status().message()));
  }
  ++reads_;
  cached_ = std::string(absl::StripAsciiWhitespace(*text));
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  size_ = st.st_size;
  mtime_ = st.st_mtim;
  valid_ = true;
  return cached_;
}

void BearerToken::Invalidate() {
  absl::MutexLock lock(&mu_);
  valid_ = false;
}

int BearerToken::reads() const {
  absl::MutexLock lock(&mu_);
  return reads_;
}

}  // namespace k8s
}  // namespace execmon
