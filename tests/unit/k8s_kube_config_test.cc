// Tests of the Kubernetes client configuration (agent/k8s/kube_config.h):
// kubeconfig variants and errors (with file:line:col), in-cluster
// configuration, and bearer token files that rotate.
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/k8s/kube_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace execmon {
namespace k8s {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/k8s_kube_config_test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, absl::string_view text) const {
    std::string p = absl::StrCat(path_, "/", name);
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::string path_;
};

constexpr absl::string_view kTwoContexts = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://10.1.2.3:6443/
    certificate-authority: pki/ca.crt
- name: prod-cluster
  cluster:
    server: https://prod.example:443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: team-a
- name: prod
  context:
    cluster: prod-cluster
    user: prod-user
users:
- name: dev-user
  user:
    token: dev-token-123
- name: prod-user
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
)";

TEST(KubeConfigTest, CurrentContextWithTokenAndRelativeCaFile) {
  absl::StatusOr<KubeConfig> c =
      ParseKubeConfig(kTwoContexts, "/etc/execmon/kubeconfig");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.1.2.3:6443");     // trailing '/' dropped
  EXPECT_EQ(c->ca_file, "/etc/execmon/pki/ca.crt");  // relative to the file
  EXPECT_EQ(c->ca_data, "");
  EXPECT_EQ(c->token, "dev-token-123");
  EXPECT_EQ(c->token_file, "");
  EXPECT_EQ(c->namespace_name, "team-a");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->source, "/etc/execmon/kubeconfig context dev");
}

TEST(KubeConfigTest, NamedContextWithInlineCertificates) {
  absl::StatusOr<KubeConfig> c = ParseKubeConfig(kTwoContexts, "kc", "prod");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://prod.example:443");
  EXPECT_EQ(c->ca_file, "");
  EXPECT_EQ(c->ca_data, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(c->client_cert_data, "CERT");
  EXPECT_EQ(c->client_key_data, "KEY");
  EXPECT_EQ(c->token, "");
  EXPECT_EQ(c->namespace_name, "default");
}

TEST(KubeConfigTest, FilesTokenFileAndInsecure) {
  absl::StatusOr<KubeConfig> c = ParseKubeConfig(R"(
current-context: c
clusters:
- name: k
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user:
    client-certificate: /abs/client.crt
    client-key: rel/client.key
    tokenFile: token
)",
                                                 "/home/me/.kube/config");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->client_cert_file, "/abs/client.crt");
  EXPECT_EQ(c->client_key_file, "/home/me/.kube/rel/client.key");
  EXPECT_EQ(c->token_file, "/home/me/.kube/token");
}

TEST(KubeConfigTest, ContextWithoutUserIsAnonymous) {
  absl::StatusOr<KubeConfig> c = ParseKubeConfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1"}}]
contexts: [{name: c, context: {cluster: k}}]
)",
                                                 "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->token, "");
  EXPECT_EQ(c->client_cert_data, "");
}

TEST(KubeConfigTest, JsonIsYamlToo) {
  absl::StatusOr<KubeConfig> c = ParseKubeConfig(
      R"({"current-context":"c","clusters":[{"name":"k","cluster":{"server":)"
      R"("https://h:6443"}}],"contexts":[{"name":"c","context":{"cluster":"k",)"
      R"("user":"u"}}],"users":[{"name":"u","user":{"token":"t"}}]})",
      "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->token, "t");
}

// Each error names the file and, where the YAML has a position, line:col.
struct ErrorCase {
  std::string name;
  std::string yaml;
  std::string context;
  std::string message;  // expected substring, including the position
};

void PrintTo(const ErrorCase& e, std::ostream* os) { *os << e.name; }

class KubeConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(KubeConfigErrorTest, Reports) {
  const ErrorCase& e = GetParam();
  absl::StatusOr<KubeConfig> c =
      ParseKubeConfig(e.yaml, "/k/config", e.context);
  ASSERT_FALSE(c.ok()) << e.name;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), StartsWith("/k/config"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(e.message))
      << e.name;
}

constexpr char kBase[] = R"(current-context: c
clusters:
- name: k
  cluster:
    server: https://h:6443
contexts:
- name: c
  context:
    cluster: k
    user: u
users:
- name: u
  user:
)";

INSTANTIATE_TEST_SUITE_P(
    Errors, KubeConfigErrorTest,
    ::testing::Values(
        ErrorCase{"Syntax", "clusters: [\n  - {name: k\n", "",
                  "/k/config:2:3: illegal block entry"},
        ErrorCase{"Empty", "", "", "/k/config: empty kubeconfig"},
        ErrorCase{"NotAMap", "- a\n- b\n", "",
                  "/k/config:1:1: a kubeconfig must be a map"},
        ErrorCase{"WrongKind", "kind: Pod\n", "",
                  "/k/config:1:7: kind is \"Pod\""},
        ErrorCase{"NoContext", "clusters: []\n", "", "no \"current-context\""},
        ErrorCase{"UnknownContext", std::string(kBase) + "    token: t\n",
                  "nope",
                  "--context refers to context \"nope\", which is not in "
                  "\"contexts\""},
        ErrorCase{"UnknownCluster",
                  "current-context: c\ncontexts:\n- name: c\n  context: "
                  "{cluster: x}\n",
                  "", "refers to cluster \"x\""},
        ErrorCase{
            "UnknownUser",
            "current-context: c\nclusters: [{name: k, cluster: {server: "
            "'https://h'}}]\ncontexts: [{name: c, context: {cluster: k, user: "
            "z}}]\n",
            "", "refers to user \"z\", which is not in \"users\""},
        ErrorCase{
            "ClustersNotAList",
            "current-context: c\nclusters:\n  k: {}\ncontexts: [{name: c, "
            "context: {cluster: k}}]\n",
            "", "/k/config:3:3: \"clusters\" must be a list"},
        ErrorCase{
            "ServerNotUrl",
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    "
            "server: h:6443\ncontexts: [{name: c, context: {cluster: k}}]\n",
            "",
            "/k/config:5:13: server \"h:6443\" must be an http:// or https://"},
        ErrorCase{
            "NoServer",
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    "
            "insecure-skip-tls-verify: true\ncontexts: [{name: c, context: "
            "{cluster: k}}]\n",
            "", "cluster \"k\" has no \"server\""},
        ErrorCase{
            "ServerIsAMap",
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    "
            "server: {a: b}\ncontexts: [{name: c, context: {cluster: k}}]\n",
            "", "/k/config:5:13: \"server\" must be a string"},
        ErrorCase{
            "BadBool",
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: "
            "https://h\n    insecure-skip-tls-verify: maybe\ncontexts: [{name: "
            "c, context: {cluster: k}}]\n",
            "",
            "/k/config:6:31: \"insecure-skip-tls-verify\" must be true or "
            "false"},
        ErrorCase{
            "BothCa",
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: "
            "https://h\n    certificate-authority: ca\n    "
            "certificate-authority-data: Q0E=\ncontexts: [{name: c, context: "
            "{cluster: k}}]\n",
            "",
            "certificate-authority and certificate-authority-data are both "
            "set"},
        ErrorCase{
            "BadBase64",
            std::string(kBase) + "    client-certificate-data: '!!'\n"
                                 "    client-key-data: S0VZ\n",
            "",
            "/k/config:14:30: \"client-certificate-data\" is not valid base64"},
        ErrorCase{"CertWithoutKey",
                  std::string(kBase) + "    client-certificate: c.crt\n", "",
                  "client certificate given without a client key"},
        ErrorCase{"ExecOnly",
                  std::string(kBase) + "    exec:\n      command: aws\n", "",
                  "/k/config:15:7: user \"u\": \"exec\" credentials are not "
                  "supported"},
        ErrorCase{
            "InsecureWithCa",
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: "
            "https://h\n    certificate-authority: ca\n    "
            "insecure-skip-tls-verify: true\ncontexts: [{name: c, context: "
            "{cluster: k}}]\n",
            "", "insecure-skip-tls-verify cannot be combined"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) {
      return info.param.name;
    });

TEST(KubeConfigTest, LoadFileErrors) {
  absl::StatusOr<KubeConfig> c = LoadKubeConfigFile("/nonexistent/kubeconfig");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("/nonexistent/kubeconfig"));

  TempDir dir;
  std::string path = dir.Write("config", "current-context: c\nclusters: [\n");
  c = LoadKubeConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), StartsWith(path + ":3:1: "));
}

TEST(KubeConfigTest, LoadFileResolvesRelativePaths) {
  TempDir dir;
  std::string path = dir.Write("sub/config", kTwoContexts);
  absl::StatusOr<KubeConfig> c = LoadKubeConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ca_file, dir.path() + "/sub/pki/ca.crt");
}

TEST(KubeConfigTest, DefaultConfigPrefersExplicitPathThenInClusterThenEnv) {
  TempDir dir;
  std::string path = dir.Write("config", kTwoContexts);
  absl::StatusOr<KubeConfig> c = LoadDefaultConfig(path, "prod");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://prod.example:443");

  unsetenv("KUBERNETES_SERVICE_HOST");
  setenv("KUBECONFIG", (path + ":/other/config").c_str(), 1);
  c = LoadDefaultConfig();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.1.2.3:6443");

  // In a pod (the service host is set) without a service account mounted.
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  c = LoadDefaultConfig();
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  unsetenv("KUBECONFIG");
  if (access("/var/run/secrets/kubernetes.io/serviceaccount/token", R_OK) !=
      0) {
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr("service account token"));
  }
}

TEST(InClusterConfigTest, FromServiceAccountDirectory) {
  TempDir dir;
  dir.Write("token", "eyJhbGciOi.token\n");
  dir.Write("ca.crt", "-----BEGIN CERTIFICATE-----\n");
  dir.Write("namespace", "observability\n");
  absl::StatusOr<KubeConfig> c =
      LoadInClusterConfigFrom("10.96.0.1", "443", dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, dir.path() + "/token");
  EXPECT_EQ(c->token, "");
  EXPECT_EQ(c->ca_file, dir.path() + "/ca.crt");
  EXPECT_EQ(c->namespace_name, "observability");
  EXPECT_EQ(c->source, "in-cluster");

  c = LoadInClusterConfigFrom("fd00::1", "6443", dir.path());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server, "https://[fd00::1]:6443");
}

TEST(InClusterConfigTest, Errors) {
  TempDir dir;
  absl::StatusOr<KubeConfig> c = LoadInClusterConfigFrom("", "443", dir.path());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  c = LoadInClusterConfigFrom("10.96.0.1", "443", dir.path());  // no token
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("service account token"));
  // Token only: CA and namespace are optional.
  dir.Write("token", "t");
  c = LoadInClusterConfigFrom("10.96.0.1", "443", dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ca_file, "");
  EXPECT_EQ(c->namespace_name, "default");
}

TEST(BearerTokenTest, StaticAndNone) {
  BearerToken none;
  EXPECT_EQ(*none.Get(), "");
  BearerToken fixed("abc", "");
  EXPECT_EQ(*fixed.Get(), "abc");
}

TEST(BearerTokenTest, FileIsReadAgainOnlyWhenItChanges) {
  TempDir dir;
  std::string path = dir.Write("token", "first\n");
  BearerToken token("ignored-when-a-file-is-set", path);
  EXPECT_EQ(*token.Get(), "first");
  EXPECT_EQ(*token.Get(), "first");
  EXPECT_EQ(token.reads(), 1);

  // Rotation the way the kubelet does it: a new file renamed over the old
  // (a new inode), here with the same size.
  std::string next = dir.Write("token.new", "secnd\n");
  ASSERT_EQ(rename(next.c_str(), path.c_str()), 0);
  EXPECT_EQ(*token.Get(), "secnd");
  EXPECT_EQ(token.reads(), 2);

  // Rewritten in place with another length.
  dir.Write("token", "third-token");
  EXPECT_EQ(*token.Get(), "third-token");
  EXPECT_EQ(token.reads(), 3);

  // After a 401: read again even if unchanged.
  token.Invalidate();
  EXPECT_EQ(*token.Get(), "third-token");
  EXPECT_EQ(token.reads(), 4);

  // Briefly missing (mid-rotation): keep serving the last token.
  ASSERT_EQ(unlink(path.c_str()), 0);
  EXPECT_EQ(*token.Get(), "third-token");
}

TEST(BearerTokenTest, MissingFileIsAnError) {
  BearerToken token("", "/nonexistent/token");
  absl::StatusOr<std::string> t = token.Get();
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("/nonexistent/token"));
}

}  // namespace
}  // namespace k8s
}  // namespace execmon
