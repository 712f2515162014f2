#include "agent/k8s/pod_watcher.h"

#include <curl/curl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace execmon {
namespace k8s {
namespace {

// Bounds on what the server may make us hold.
constexpr size_t kMaxListBody = 256u << 20;  // one LIST page
constexpr size_t kMaxWatchLine = 16u << 20;  // one watch event
constexpr size_t kMaxErrorBody = 64u << 10;  // an error response
constexpr absl::string_view kMirrorAnnotation = "kubernetes.io/config.mirror";

// ---------------------------------------------------------------------------
// JSON helpers (RapidJSON DOM).

const rapidjson::Value* Member(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

std::string Str(const rapidjson::Value* v) {
  if (v == nullptr || !v->IsString()) return "";
  return std::string(v->GetString(), v->GetStringLength());
}

std::string StrAt(const rapidjson::Value& v, const char* key) {
  return Str(Member(v, key));
}

std::map<std::string, std::string> StringMap(const rapidjson::Value* v) {
  std::map<std::string, std::string> out;
  if (v == nullptr || !v->IsObject()) return out;
  for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it) {
    if (!it->value.IsString()) continue;
    out.emplace(
        std::string(it->name.GetString(), it->name.GetStringLength()),
        std::string(it->value.GetString(), it->value.GetStringLength()));
  }
  return out;
}

absl::Status ParseJson(absl::string_view text, rapidjson::Document* doc) {
  doc->Parse(text.data(), text.size());
  if (doc->HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at offset ", doc->GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc->GetParseError())));
  }
  return absl::OkStatus();
}

void AddContainerStatuses(const rapidjson::Value* statuses,
                          absl::string_view type, PodInfo* pod) {
  if (statuses == nullptr || !statuses->IsArray()) return;
  for (const rapidjson::Value& s : statuses->GetArray()) {
    ContainerMeta meta;
    meta.pod_uid = pod->uid;
    meta.container_name = StrAt(s, "name");
    meta.image = StrAt(s, "image");
    meta.image_id = StrAt(s, "imageID");
    meta.type = std::string(type);
    absl::StatusOr<ContainerId> id = ParseContainerId(StrAt(s, "containerID"));
    if (id.ok()) {
      meta.runtime = id->runtime;
      meta.container_id = id->id;
      pod->containers.push_back(meta);
    }
    // The previous instance of a restarted container: its processes may
    // still be reporting.
    const rapidjson::Value* last = Member(s, "lastState");
    const rapidjson::Value* terminated =
        last ? Member(*last, "terminated") : nullptr;
    if (terminated != nullptr) {
      absl::StatusOr<ContainerId> prev =
          ParseContainerId(StrAt(*terminated, "containerID"));
      if (prev.ok() && (!id.ok() || prev->id != id->id)) {
        ContainerMeta old = meta;
        old.runtime = prev->runtime;
        old.container_id = prev->id;
        old.previous = true;
        pod->containers.push_back(std::move(old));
      }
    }
  }
}

absl::StatusOr<PodInfo> ParsePodValue(const rapidjson::Value& obj,
                                      bool include_annotations) {
  if (!obj.IsObject())
    return absl::InvalidArgumentError("pod is not an object");
  const rapidjson::Value* meta = Member(obj, "metadata");
  if (meta == nullptr || !meta->IsObject()) {
    return absl::InvalidArgumentError("pod has no metadata");
  }
  PodInfo pod;
  pod.uid = StrAt(*meta, "uid");
  pod.name = StrAt(*meta, "name");
  if (pod.uid.empty() || pod.name.empty()) {
    return absl::InvalidArgumentError(
        "pod has no metadata.uid or metadata.name");
  }
  pod.namespace_name = StrAt(*meta, "namespace");
  pod.resource_version = StrAt(*meta, "resourceVersion");
  pod.labels = StringMap(Member(*meta, "labels"));
  const rapidjson::Value* annotations = Member(*meta, "annotations");
  if (annotations != nullptr && annotations->IsObject()) {
    auto mirror = annotations->FindMember(kMirrorAnnotation.data());
    if (mirror != annotations->MemberEnd()) pod.mirror_of = Str(&mirror->value);
    if (include_annotations) pod.annotations = StringMap(annotations);
  }
  const rapidjson::Value* owners = Member(*meta, "ownerReferences");
  if (owners != nullptr && owners->IsArray()) {
    for (const rapidjson::Value& o : owners->GetArray()) {
      OwnerReference ref;
      ref.api_version = StrAt(o, "apiVersion");
      ref.kind = StrAt(o, "kind");
      ref.name = StrAt(o, "name");
      const rapidjson::Value* controller = Member(o, "controller");
      ref.controller = controller != nullptr && controller->IsBool() &&
                       controller->GetBool();
      if (!ref.kind.empty() && !ref.name.empty()) pod.owners.push_back(ref);
    }
  }
  const rapidjson::Value* spec = Member(obj, "spec");
  if (spec != nullptr) {
    pod.node_name = StrAt(*spec, "nodeName");
    pod.service_account = StrAt(*spec, "serviceAccountName");
  }
  const rapidjson::Value* status = Member(obj, "status");
  if (status != nullptr) {
    pod.phase = StrAt(*status, "phase");
    AddContainerStatuses(Member(*status, "initContainerStatuses"), "init",
                         &pod);
    AddContainerStatuses(Member(*status, "containerStatuses"), "container",
                         &pod);
    AddContainerStatuses(Member(*status, "ephemeralContainerStatuses"),
                         "ephemeral", &pod);
  }
  Workload w = ResolveWorkload(pod.name, pod.labels, pod.owners);
  pod.workload = std::move(w.name);
  pod.workload_kind = std::move(w.kind);
  return pod;
}

std::string NormalizeUid(absl::string_view uid) {
  return absl::StrReplaceAll(uid, {{"_", "-"}});
}

std::string PercentEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The message of a Status object in an error response, if it is one.
std::string StatusMessage(absl::string_view body) {
  rapidjson::Document doc;
  if (ParseJson(body, &doc).ok()) {
    std::string msg = StrAt(doc, "message");
    if (!msg.empty()) return msg;
  }
  std::string text(body.substr(0, 200));
  return std::string(absl::StripAsciiWhitespace(text));
}

bool FileReadable(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  fclose(f);
  return true;
}

std::once_flag curl_init_once;
CURLcode curl_init_result = CURLE_OK;

}  // namespace

// ---------------------------------------------------------------------------
// Model

absl::StatusOr<ContainerId> ParseContainerId(absl::string_view container_id) {
  size_t sep = container_id.find("://");
  if (sep == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "container ID \"", container_id, "\" is not <runtime>://<id>"));
  }
  absl::string_view runtime = container_id.substr(0, sep);
  absl::string_view id = container_id.substr(sep + 3);
  if (runtime.empty() || id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "container ID \"", container_id, "\" has an empty runtime or ID"));
  }
  for (char c : runtime) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-' &&
        c != '.' && c != '_') {
      return absl::InvalidArgumentError(absl::StrCat(
          "container ID \"", container_id, "\": bad runtime name"));
    }
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat(
          "container ID \"", container_id, "\": bad character in the ID"));
    }
  }
  return ContainerId{std::string(runtime), std::string(id)};
}

Workload ResolveWorkload(absl::string_view pod_name,
                         const std::map<std::string, std::string>& labels,
                         const std::vector<OwnerReference>& owners) {
  const OwnerReference* owner = nullptr;
  for (const OwnerReference& o : owners) {
    if (o.controller) {
      owner = &o;
      break;
    }
  }
  if (owner == nullptr && !owners.empty()) owner = &owners.front();
  if (owner == nullptr || owner->kind == "Node") {
    return Workload{std::string(pod_name), "Pod"};
  }
  const std::string& name = owner->name;
  if (owner->kind == "ReplicaSet") {
    auto it = labels.find("pod-template-hash");
    if (it != labels.end() && !it->second.empty() &&
        name.size() > it->second.size() + 1 &&
        absl::EndsWith(name, absl::StrCat("-", it->second))) {
      return Workload{name.substr(0, name.size() - it->second.size() - 1),
                      "Deployment"};
    }
    return Workload{name, "ReplicaSet"};
  }
  if (owner->kind == "Job") {
    size_t dash = name.rfind('-');
    if (dash != std::string::npos && dash > 0 && name.size() - dash - 1 >= 8) {
      absl::string_view digits = absl::string_view(name).substr(dash + 1);
      if (std::all_of(digits.begin(), digits.end(),
                      [](char c) { return absl::ascii_isdigit(c); })) {
        return Workload{name.substr(0, dash), "CronJob"};
      }
    }
    return Workload{name, "Job"};
  }
  return Workload{name, owner->kind};
}

absl::StatusOr<PodInfo> ParsePodJson(absl::string_view json,
                                     bool include_annotations) {
  rapidjson::Document doc;
  absl::Status s = ParseJson(json, &doc);
  if (!s.ok()) return s;
  return ParsePodValue(doc, include_annotations);
}

// ---------------------------------------------------------------------------
// PodStore

PodStore::PodStore(PodStoreOptions options) : options_(std::move(options)) {}

absl::StatusOr<PodListPage> PodStore::ParseListPage(absl::string_view json,
                                                    bool include_annotations) {
  rapidjson::Document doc;
  absl::Status s = ParseJson(json, &doc);
  if (!s.ok()) return s;
  if (!doc.IsObject())
    return absl::InvalidArgumentError("list is not an object");
  std::string kind = StrAt(doc, "kind");
  if (!kind.empty() && kind != "PodList") {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a PodList, got ", kind));
  }
  PodListPage page;
  const rapidjson::Value* meta = Member(doc, "metadata");
  if (meta != nullptr) {
    page.resource_version = StrAt(*meta, "resourceVersion");
    page.continue_token = StrAt(*meta, "continue");
  }
  const rapidjson::Value* items = Member(doc, "items");
  if (items != nullptr && !items->IsNull()) {
    if (!items->IsArray())
      return absl::InvalidArgumentError("items is not a list");
    for (const rapidjson::Value& item : items->GetArray()) {
      absl::StatusOr<PodInfo> pod = ParsePodValue(item, include_annotations);
      if (!pod.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("list item: ", pod.status().message()));
      }
      page.pods.push_back(*std::move(pod));
    }
  }
  return page;
}

void PodStore::ReplaceAll(std::vector<PodInfo> pods, absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_set<std::string> listed;
  for (const PodInfo& p : pods) listed.insert(p.uid);
  std::vector<std::string> gone;
  for (const auto& [uid, pod] : pods_) {
    if (!pod.deleted && !listed.contains(uid)) gone.push_back(uid);
  }
  for (const std::string& uid : gone) RemoveLocked(uid, now);
  for (PodInfo& p : pods) UpsertLocked(std::move(p), now);
  ExpireLocked(now);
  generation_.fetch_add(1);
  changed_.SignalAll();
}

absl::StatusOr<WatchEventResult> PodStore::ApplyWatchEvent(
    absl::string_view line, absl::Time now) {
  rapidjson::Document doc;
  absl::Status s = ParseJson(line, &doc);
  if (!s.ok()) return s;
  if (!doc.IsObject())
    return absl::InvalidArgumentError("watch event is not an object");
  std::string type = StrAt(doc, "type");
  const rapidjson::Value* object = Member(doc, "object");
  if (object == nullptr || !object->IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("watch event ", type, " has no object"));
  }
  WatchEventResult result;
  if (type == "ERROR") {
    result.type = WatchEventType::kError;
    const rapidjson::Value* code = Member(*object, "code");
    if (code != nullptr && code->IsInt()) result.error_code = code->GetInt();
    result.error_message = StrAt(*object, "message");
    if (result.error_message.empty())
      result.error_message = StrAt(*object, "reason");
    return result;
  }
  const rapidjson::Value* meta = Member(*object, "metadata");
  result.resource_version = meta ? StrAt(*meta, "resourceVersion") : "";
  if (type == "BOOKMARK") {
    result.type = WatchEventType::kBookmark;
    return result;
  }
  if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown watch event type \"", type, "\""));
  }
  absl::StatusOr<PodInfo> pod =
      ParsePodValue(*object, options_.include_annotations);
  if (!pod.ok()) return pod.status();
  absl::MutexLock lock(&mu_);
  if (type == "DELETED") {
    result.type = WatchEventType::kDeleted;
    RemoveLocked(pod->uid, now);
  } else {
    result.type =
        type == "ADDED" ? WatchEventType::kAdded : WatchEventType::kModified;
    if (!options_.node_name.empty() && pod->node_name != options_.node_name) {
      RemoveLocked(pod->uid, now);  // not ours (any more)
    } else {
      UpsertLocked(*std::move(pod), now);
    }
  }
  ExpireLocked(now);
  generation_.fetch_add(1);
  changed_.SignalAll();
  return result;
}

void PodStore::Upsert(PodInfo pod, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!options_.node_name.empty() && pod.node_name != options_.node_name)
    return;
  UpsertLocked(std::move(pod), now);
  ExpireLocked(now);
  generation_.fetch_add(1);
  changed_.SignalAll();
}

void PodStore::Remove(absl::string_view uid, absl::Time now) {
  absl::MutexLock lock(&mu_);
  RemoveLocked(std::string(uid), now);
  ExpireLocked(now);
  generation_.fetch_add(1);
  changed_.SignalAll();
}

void PodStore::ExpireTombstones(absl::Time now) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(now);
}

void PodStore::UpsertLocked(PodInfo pod, absl::Time now) {
  (void)now;
  if (!options_.node_name.empty() && pod.node_name != options_.node_name)
    return;
  pod.cluster = options_.cluster_name;
  auto it = pods_.find(pod.uid);
  if (it != pods_.end()) {
    DropContainersLocked(it->second);
    if (it->second.deleted) --tombstones_;
    if (!it->second.mirror_of.empty()) mirrors_.erase(it->second.mirror_of);
  }
  pod.deleted = false;
  pod.deleted_at = absl::InfinitePast();
  for (const ContainerMeta& c : pod.containers) containers_[c.container_id] = c;
  if (!pod.mirror_of.empty()) mirrors_[pod.mirror_of] = pod.uid;
  std::string uid = pod.uid;
  pods_[uid] = std::move(pod);
}

void PodStore::RemoveLocked(const std::string& uid, absl::Time now) {
  auto it = pods_.find(uid);
  if (it == pods_.end() || it->second.deleted) return;
  it->second.deleted = true;
  it->second.deleted_at = now;
  ++tombstones_;
}

void PodStore::DropContainersLocked(const PodInfo& pod) {
  for (const ContainerMeta& c : pod.containers) {
    auto it = containers_.find(c.container_id);
    if (it != containers_.end() && it->second.pod_uid == pod.uid) {
      containers_.erase(it);
    }
  }
}

void PodStore::ExpireLocked(absl::Time now) {
  if (tombstones_ == 0) return;
  for (auto it = pods_.begin(); it != pods_.end();) {
    const PodInfo& pod = it->second;
    if (pod.deleted && pod.deleted_at + options_.tombstone_ttl <= now) {
      DropContainersLocked(pod);
      auto m = mirrors_.find(pod.mirror_of);
      if (m != mirrors_.end() && m->second == pod.uid) mirrors_.erase(m);
      --tombstones_;
      generation_.fetch_add(1);
      pods_.erase(it++);
    } else {
      ++it;
    }
  }
}

const PodInfo* PodStore::FindLocked(absl::string_view uid,
                                    absl::Time now) const {
  std::string key = NormalizeUid(uid);
  auto it = pods_.find(key);
  if (it == pods_.end()) {
    auto m = mirrors_.find(key);
    if (m == mirrors_.end()) return nullptr;
    it = pods_.find(m->second);
    if (it == pods_.end()) return nullptr;
  }
  const PodInfo& pod = it->second;
  if (pod.deleted && pod.deleted_at + options_.tombstone_ttl <= now)
    return nullptr;
  return &pod;
}

absl::optional<PodInfo> PodStore::FindPod(absl::string_view uid,
                                          absl::Time now) const {
  absl::ReaderMutexLock lock(&mu_);
  const PodInfo* pod = FindLocked(uid, now);
  if (pod == nullptr) return absl::nullopt;
  return *pod;
}

absl::optional<ContainerMeta> PodStore::FindContainer(
    absl::string_view container_id, absl::Time now) const {
  std::string key(container_id);
  if (absl::StrContains(container_id, "://")) {
    absl::StatusOr<ContainerId> id = ParseContainerId(container_id);
    if (!id.ok()) return absl::nullopt;
    key = id->id;
  }
  absl::ReaderMutexLock lock(&mu_);
  auto it = containers_.find(key);
  if (it == containers_.end()) return absl::nullopt;
  if (FindLocked(it->second.pod_uid, now) == nullptr) return absl::nullopt;
  return it->second;
}

absl::optional<PodInfo> PodStore::WaitForPod(absl::string_view uid,
                                             absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  while (true) {
    const PodInfo* pod = FindLocked(uid, absl::Now());
    if (pod != nullptr) return *pod;
    if (shutdown_ || absl::Now() >= deadline) return absl::nullopt;
    changed_.WaitWithDeadline(&mu_, deadline);
  }
}

void PodStore::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  generation_.fetch_add(1);
  changed_.SignalAll();
}

std::vector<PodInfo> PodStore::Pods(bool include_tombstones,
                                    absl::Time now) const {
  std::vector<PodInfo> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [uid, pod] : pods_) {
      if (pod.deleted && (!include_tombstones ||
                          pod.deleted_at + options_.tombstone_ttl <= now)) {
        continue;
      }
      out.push_back(pod);
    }
  }
  std::sort(out.begin(), out.end(), [](const PodInfo& a, const PodInfo& b) {
    if (a.namespace_name != b.namespace_name)
      return a.namespace_name < b.namespace_name;
    if (a.name != b.name) return a.name < b.name;
    return a.uid < b.uid;
  });
  return out;
}

size_t PodStore::live_pods() const {
  absl::ReaderMutexLock lock(&mu_);
  return pods_.size() - tombstones_;
}

size_t PodStore::tombstones() const {
  absl::ReaderMutexLock lock(&mu_);
  return tombstones_;
}

size_t PodStore::containers() const {
  absl::ReaderMutexLock lock(&mu_);
  return containers_.size();
}

// ---------------------------------------------------------------------------
// HTTP (libcurl): one easy handle, used only by the watcher's thread, so
// that the connection is reused between requests.

class PodWatcher::Http {
 public:
  struct Result {
    long status = 0;         // HTTP status, 0 when none was received
    std::string body;        // unless streamed to on_data (status 200)
    std::string error;       // transport error, "" when the transfer ended well
    bool stopped = false;    // aborted because of Stop()
    bool restarted = false;  // aborted because of RestartWatchForTesting()
    bool consumer_aborted = false;  // on_data returned false
  };

  Http(const KubeConfig& config, const PodWatcherOptions& options,
       BearerToken* token, std::atomic<bool>* stop, std::atomic<bool>* restart)
      : config_(config),
        options_(options),
        token_(token),
        stop_(stop),
        restart_(restart) {}
  ~Http() {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }

  absl::Status Init() {
    curl_ = curl_easy_init();
    if (curl_ == nullptr) return absl::InternalError("curl_easy_init failed");
    return absl::OkStatus();
  }

  // GET `url`. With on_data, a 200 response's body is streamed to it;
  // on_headers is called once the status is known.
  Result Get(const std::string& url, absl::Duration timeout, bool watch,
             const std::function<void(long)>& on_headers,
             const std::function<bool(absl::string_view)>& on_data,
             size_t max_body) {
    Result result;
    absl::StatusOr<std::string> token = token_->Get();
    if (!token.ok()) {
      result.error = std::string(token.status().message());
      return result;
    }
    Transfer t;
    t.curl = curl_;
    t.watch = watch;
    t.stop = stop_;
    t.restart = restart_;
    t.on_headers = &on_headers;
    t.on_data = &on_data;
    t.max_body = max_body;
    t.result = &result;

    curl_easy_reset(curl_);
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(
        curl_, CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(timeout)));
    curl_easy_setopt(curl_, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl_, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(curl_, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    // Certificates.
    if (config_.insecure_skip_tls_verify) {
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_blob ca_blob, cert_blob, key_blob;
    if (!config_.ca_data.empty()) {
      ca_blob = {const_cast<char*>(config_.ca_data.data()),
                 config_.ca_data.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl_, CURLOPT_CAINFO_BLOB, &ca_blob);
    } else if (!config_.ca_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_CAINFO, config_.ca_file.c_str());
    }
    if (!config_.client_cert_data.empty()) {
      cert_blob = {const_cast<char*>(config_.client_cert_data.data()),
                   config_.client_cert_data.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl_, CURLOPT_SSLCERT_BLOB, &cert_blob);
      curl_easy_setopt(curl_, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (!config_.client_cert_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_SSLCERT,
                       config_.client_cert_file.c_str());
      curl_easy_setopt(curl_, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (!config_.client_key_data.empty()) {
      key_blob = {const_cast<char*>(config_.client_key_data.data()),
                  config_.client_key_data.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl_, CURLOPT_SSLKEY_BLOB, &key_blob);
      curl_easy_setopt(curl_, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (!config_.client_key_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_SSLKEY, config_.client_key_file.c_str());
      curl_easy_setopt(curl_, CURLOPT_SSLKEYTYPE, "PEM");
    }
    // Headers.
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Accept: application/json");
    std::string auth;
    if (!token->empty()) {
      auth = absl::StrCat("Authorization: Bearer ", *token);
      headers = curl_slist_append(headers, auth.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    // Callbacks.
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &Http::HeaderCallback);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Http::WriteCallback);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &Http::ProgressCallback);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, &t);

    CURLcode code = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (result.status == 0) {
      long status = 0;
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
      result.status = status;
    }
    // Clear the pointers to this frame's buffers from the handle.
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
    if (code != CURLE_OK) {
      if (code == CURLE_ABORTED_BY_CALLBACK) {
        result.stopped = stop_->load();
        result.restarted = !result.stopped && t.restart_seen;
      }
      result.error = errbuf[0] != '\0' ? std::string(errbuf)
                                       : std::string(curl_easy_strerror(code));
      if (t.overflow) result.error = "response too large";
    }
    return result;
  }

 private:
  struct Transfer {
    CURL* curl = nullptr;
    bool watch = false;
    std::atomic<bool>* stop = nullptr;
    std::atomic<bool>* restart = nullptr;
    const std::function<void(long)>* on_headers = nullptr;
    const std::function<bool(absl::string_view)>* on_data = nullptr;
    size_t max_body = 0;
    Result* result = nullptr;
    bool headers_done = false;
    bool overflow = false;
    bool restart_seen = false;
  };

  static void HeadersDone(Transfer* t) {
    if (t->headers_done) return;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status / 100 == 1) return;  // an interim 1xx response
    t->headers_done = true;
    t->result->status = status;
    if (*t->on_headers) (*t->on_headers)(status);
  }

  static size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
    Transfer* t = static_cast<Transfer*>(user);
    absl::string_view line(data, size * n);
    if (line == "\r\n" || line == "\n") HeadersDone(t);
    return size * n;
  }

  static size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
    Transfer* t = static_cast<Transfer*>(user);
    size_t len = size * n;
    HeadersDone(t);
    if (t->result->status == 200 && *t->on_data) {
      if (!(*t->on_data)(absl::string_view(data, len))) {
        t->result->consumer_aborted = true;
        return 0;
      }
      return len;
    }
    size_t cap = t->result->status == 200 ? t->max_body : kMaxErrorBody;
    if (t->result->body.size() + len > cap) {
      t->overflow = t->result->status == 200;
      if (t->result->status != 200) return len;  // keep the head of an error
      return 0;
    }
    t->result->body.append(data, len);
    return len;
  }

  static int ProgressCallback(void* user, curl_off_t, curl_off_t, curl_off_t,
                              curl_off_t) {
    Transfer* t = static_cast<Transfer*>(user);
    if (t->stop->load()) return 1;
    if (t->watch && t->restart->load()) {
      t->restart_seen = true;
      return 1;
    }
    return 0;
  }

  const KubeConfig& config_;
  const PodWatcherOptions& options_;
  BearerToken* token_;
  std::atomic<bool>* stop_;
  std::atomic<bool>* restart_;
  CURL* curl_ = nullptr;
};

// ---------------------------------------------------------------------------
// PodWatcher

absl::string_view PodWatcherStateName(PodWatcherState state) {
  switch (state) {
    case PodWatcherState::kIdle:
      return "idle";
    case PodWatcherState::kListing:
      return "listing";
    case PodWatcherState::kWatching:
      return "watching";
    case PodWatcherState::kBackoff:
      return "backoff";
    case PodWatcherState::kStopped:
      return "stopped";
  }
  return "unknown";
}

PodWatcher::PodWatcher(KubeConfig config, PodWatcherOptions options)
    : config_(std::move(config)),
      options_(std::move(options)),
      store_(PodStoreOptions{options_.node_name, options_.cluster_name,
                             options_.include_annotations,
                             options_.tombstone_ttl}),
      token_(config_.token, config_.token_file) {}

absl::StatusOr<std::unique_ptr<PodWatcher>> PodWatcher::Create(
    KubeConfig config, PodWatcherOptions options) {
  if (options.node_name.empty()) {
    return absl::InvalidArgumentError("pod watcher: a node name is required");
  }
  if (config.server.empty()) {
    return absl::InvalidArgumentError("pod watcher: no API server URL");
  }
  if (options.backoff_initial <= absl::ZeroDuration() ||
      options.backoff_max < options.backoff_initial) {
    return absl::InvalidArgumentError(
        "pod watcher: need 0 < backoff_initial <= backoff_max");
  }
  if (options.request_timeout <= absl::ZeroDuration() ||
      options.connect_timeout <= absl::ZeroDuration() ||
      options.watch_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "pod watcher: timeouts must be positive (watch_timeout >= 1s)");
  }
  if (options.list_page_size <= 0) options.list_page_size = 500;
  for (const std::string* f :
       {&config.ca_file, &config.client_cert_file, &config.client_key_file}) {
    if (!f->empty() && !FileReadable(*f)) {
      return absl::FailedPreconditionError(
          absl::StrCat("pod watcher: cannot read ", *f));
    }
  }
  std::call_once(curl_init_once, [] {
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  });
  if (curl_init_result != CURLE_OK) {
    return absl::InternalError(absl::StrCat(
        "curl_global_init: ", curl_easy_strerror(curl_init_result)));
  }
  std::unique_ptr<PodWatcher> w(
      new PodWatcher(std::move(config), std::move(options)));
  // The token must be readable now (it is re-read whenever it changes).
  absl::StatusOr<std::string> token = w->token_.Get();
  if (!token.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("pod watcher: ", token.status().message()));
  }
  w->http_ = std::make_unique<Http>(w->config_, w->options_, &w->token_,
                                    &w->stop_, &w->restart_watch_);
  absl::Status s = w->http_->Init();
  if (!s.ok()) return s;
  return w;
}

PodWatcher::~PodWatcher() { Stop(); }

absl::Status PodWatcher::Start() {
  absl::MutexLock lock(&mu_);
  if (started_)
    return absl::FailedPreconditionError("pod watcher already started");
  if (stopped_) return absl::FailedPreconditionError("pod watcher stopped");
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void PodWatcher::Stop() {
  absl::MutexLock serial(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  stop_.store(true);
  store_.Shutdown();
  if (thread_.joinable()) thread_.join();
  SetState(PodWatcherState::kStopped);
}

void PodWatcher::Logf(LogLevel level, absl::string_view message) const {
  std::string line = absl::StrCat("k8s pod watcher (node ", options_.node_name,
                                  "): ", message);
  if (options_.logger) {
    options_.logger(level, line);
  } else if (level >= LogLevel::kWarning) {
    fprintf(stderr, "%s\n", line.c_str());
  }
}

void PodWatcher::SetState(PodWatcherState state) {
  absl::MutexLock lock(&mu_);
  state_ = state;
}

void PodWatcher::RecordError(absl::string_view message) {
  {
    absl::MutexLock lock(&mu_);
    ++counters_.errors;
    counters_.last_error = std::string(message);
  }
  Logf(LogLevel::kWarning, message);
}

bool PodWatcher::SleepFor(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), d);
  return !stopped_;
}

std::string PodWatcher::PodsUrl(bool watch, absl::string_view resource_version,
                                absl::string_view continue_token,
                                absl::Duration timeout) const {
  std::string url = absl::StrCat(
      config_.server, "/api/v1/pods?fieldSelector=",
      PercentEncode(absl::StrCat("spec.nodeName=", options_.node_name)));
  if (watch) {
    absl::StrAppend(&url, "&watch=1&allowWatchBookmarks=true&timeoutSeconds=",
                    absl::ToInt64Seconds(timeout));
  } else {
    absl::StrAppend(&url, "&limit=", options_.list_page_size);
  }
  if (!continue_token.empty()) {
    absl::StrAppend(&url, "&continue=", PercentEncode(continue_token));
  } else if (!resource_version.empty()) {
    absl::StrAppend(&url, "&resourceVersion=", PercentEncode(resource_version));
  }
  return url;
}

absl::StatusOr<std::string> PodWatcher::ListAll(bool consistent,
                                                bool* expired) {
  *expired = false;
  std::vector<PodInfo> pods;
  std::string continue_token;
  std::string resource_version;
  static const std::function<void(long)> kNoHeaders;
  static const std::function<bool(absl::string_view)> kNoData;
  do {
    // The first list of a watcher may come from the API server's watch
    // cache (resourceVersion=0: cheap for the cluster); a relist after an
    // expired version reads from etcd (no resourceVersion).
    std::string url = PodsUrl(false, consistent ? "" : "0", continue_token,
                              absl::ZeroDuration());
    Http::Result r = http_->Get(url, options_.request_timeout, false,
                                kNoHeaders, kNoData, kMaxListBody);
    if (r.stopped) return absl::CancelledError("stopped");
    if (!r.error.empty()) {
      return absl::UnavailableError(absl::StrCat("list pods: ", r.error));
    }
    if (r.status == 410) {
      *expired = true;
      return absl::OutOfRangeError(
          absl::StrCat("list pods: 410 Gone: ", StatusMessage(r.body)));
    }
    if (r.status == 401) token_.Invalidate();
    if (r.status != 200) {
      std::string hint;
      if (r.status == 403) hint = " (RBAC: needs list and watch on pods)";
      return absl::UnavailableError(absl::StrCat(
          "list pods: HTTP ", r.status, ": ", StatusMessage(r.body), hint));
    }
    absl::StatusOr<PodListPage> page =
        PodStore::ParseListPage(r.body, options_.include_annotations);
    if (!page.ok()) {
      return absl::DataLossError(
          absl::StrCat("list pods: ", page.status().message()));
    }
    {
      absl::MutexLock lock(&mu_);
      ++counters_.list_pages;
    }
    for (PodInfo& p : page->pods) pods.push_back(std::move(p));
    continue_token = page->continue_token;
    resource_version = page->resource_version;
  } while (!continue_token.empty() && !stopping());
  if (stopping()) return absl::CancelledError("stopped");
  if (resource_version.empty()) {
    return absl::DataLossError("list pods: the list has no resourceVersion");
  }
  size_t n = pods.size();
  store_.ReplaceAll(std::move(pods), absl::Now());
  {
    absl::MutexLock lock(&mu_);
    ++counters_.lists;
    counters_.resource_version = resource_version;
    synced_ = true;
  }
  Logf(LogLevel::kInfo, absl::StrCat("listed ", n, " pods at resourceVersion ",
                                     resource_version));
  return resource_version;
}

PodWatcher::WatchEnd PodWatcher::Watch(std::string* resource_version,
                                       bool resumed, bool* got_events) {
  *got_events = false;
  absl::Duration timeout;
  {
    absl::BitGen gen;
    timeout = options_.watch_timeout * absl::Uniform(gen, 1.0, 2.0);
  }
  timeout = absl::Seconds(std::max<int64_t>(1, absl::ToInt64Seconds(timeout)));
  std::string url = PodsUrl(true, *resource_version, "", timeout);

  WatchEnd outcome = WatchEnd::kClosed;
  std::string buffer;
  std::function<void(long)> on_headers = [&](long status) {
    if (status != 200) return;
    absl::MutexLock lock(&mu_);
    state_ = PodWatcherState::kWatching;
    ++counters_.watches;
    if (resumed) ++counters_.watch_restarts;
  };
  std::function<bool(absl::string_view)> on_data =
      [&](absl::string_view chunk) {
        buffer.append(chunk.data(), chunk.size());
        size_t start = 0;
        size_t nl;
        while ((nl = buffer.find('\n', start)) != std::string::npos) {
          absl::string_view line = absl::StripAsciiWhitespace(
              absl::string_view(buffer).substr(start, nl - start));
          start = nl + 1;
          if (line.empty()) continue;
          absl::StatusOr<WatchEventResult> ev =
              store_.ApplyWatchEvent(line, absl::Now());
          if (!ev.ok()) {
            RecordError(
                absl::StrCat("watch: bad event: ", ev.status().message()));
            outcome = WatchEnd::kFailed;
            return false;
          }
          if (ev->type == WatchEventType::kError) {
            if (ev->error_code == 410) {
              Logf(LogLevel::kInfo,
                   absl::StrCat("watch: resourceVersion expired (",
                                ev->error_message, "): relisting"));
              outcome = WatchEnd::kExpired;
            } else {
              RecordError(absl::StrCat("watch: error event ", ev->error_code,
                                       ": ", ev->error_message));
              outcome = WatchEnd::kFailed;
            }
            return false;
          }
          absl::MutexLock lock(&mu_);
          if (ev->type == WatchEventType::kBookmark) {
            ++counters_.bookmarks;
          } else {
            ++counters_.events;
            *got_events = true;
          }
          if (!ev->resource_version.empty()) {
            *resource_version = ev->resource_version;
            counters_.resource_version = ev->resource_version;
          }
        }
        buffer.erase(0, start);
        if (buffer.size() > kMaxWatchLine) {
          RecordError("watch: event larger than 16 MiB");
          outcome = WatchEnd::kFailed;
          return false;
        }
        return true;
      };

  Http::Result r = http_->Get(url, timeout + absl::Seconds(30), true,
                              on_headers, on_data, kMaxErrorBody);
  if (r.stopped || stopping()) return WatchEnd::kStopped;
  if (r.restarted) {
    restart_watch_.store(false);
    return WatchEnd::kRestart;
  }
  if (r.consumer_aborted) return outcome;
  if (r.status == 410) {
    Logf(LogLevel::kInfo, "watch: 410 Gone: relisting");
    return WatchEnd::kExpired;
  }
  if (!r.error.empty()) {
    RecordError(absl::StrCat("watch pods: ", r.error));
    return WatchEnd::kFailed;
  }
  if (r.status == 401) token_.Invalidate();
  if (r.status != 200) {
    RecordError(absl::StrCat("watch pods: HTTP ", r.status, ": ",
                             StatusMessage(r.body)));
    return WatchEnd::kFailed;
  }
  return WatchEnd::kClosed;  // the server ended it (timeoutSeconds)
}

void PodWatcher::CheckNode() {
  static const std::function<void(long)> kNoHeaders;
  static const std::function<bool(absl::string_view)> kNoData;
  std::string url = absl::StrCat(config_.server, "/api/v1/nodes/",
                                 PercentEncode(options_.node_name));
  Http::Result r = http_->Get(url, options_.request_timeout, false, kNoHeaders,
                              kNoData, kMaxErrorBody);
  if (r.stopped || !r.error.empty()) return;
  if (r.status == 404) {
    Logf(LogLevel::kWarning,
         absl::StrCat("node \"", options_.node_name,
                      "\" does not exist: no pod will ever match; is the node "
                      "name the one the kubelet registered (spec.nodeName)?"));
  } else if (r.status == 403) {
    Logf(LogLevel::kWarning, "cannot get this node (RBAC: needs get on nodes)");
  }
}

void PodWatcher::Run() {
  absl::BitGen gen;
  absl::Duration next_delay = options_.backoff_initial;
  auto backoff = [&]() -> bool {
    absl::Duration d = next_delay * absl::Uniform(gen, 0.5, 1.0);
    next_delay = std::min(next_delay * 2, options_.backoff_max);
    SetState(PodWatcherState::kBackoff);
    return SleepFor(d);
  };
  auto reset_backoff = [&] { next_delay = options_.backoff_initial; };

  bool need_list = true;
  bool consistent = false;
  bool node_checked = false;
  bool just_listed = false;
  std::string rv;
  while (!stopping()) {
    if (need_list) {
      SetState(PodWatcherState::kListing);
      bool expired = false;
      absl::StatusOr<std::string> listed = ListAll(consistent, &expired);
      if (stopping()) break;
      if (!listed.ok()) {
        RecordError(listed.status().message());
        if (expired) {
          absl::MutexLock lock(&mu_);
          ++counters_.relists_410;
          consistent = true;
        }
        if (!backoff()) break;
        continue;
      }
      rv = *listed;
      need_list = false;
      consistent = false;
      just_listed = true;
      reset_backoff();
      if (!node_checked) {
        node_checked = true;
        CheckNode();
      }
    }
    {
      absl::MutexLock lock(&mu_);
      if (!forced_resource_version_.empty()) {
        rv = std::move(forced_resource_version_);
        forced_resource_version_.clear();
        restart_watch_.store(false);
      }
    }
    bool got_events = false;
    absl::Time started = absl::Now();
    WatchEnd end = Watch(&rv, /*resumed=*/!just_listed, &got_events);
    bool was_fresh = just_listed;
    just_listed = false;
    bool progressed = got_events || absl::Now() - started >= absl::Seconds(30);
    if (end == WatchEnd::kStopped) break;
    if (end == WatchEnd::kRestart) continue;
    if (end == WatchEnd::kExpired) {
      {
        absl::MutexLock lock(&mu_);
        ++counters_.relists_410;
      }
      need_list = true;
      consistent = true;
      // Expired straight after a list: wait before listing again.
      if (was_fresh && !got_events && !backoff()) break;
      continue;
    }
    if (progressed) reset_backoff();
    if (end == WatchEnd::kClosed) {
      // The server ended the watch (timeoutSeconds): resume at once, unless
      // it ended at once, which must not become a busy loop.
      if (!progressed && absl::Now() - started < absl::Seconds(1) && !backoff())
        break;
      continue;
    }
    // kFailed: resume from the same resourceVersion after a delay.
    if (!backoff()) break;
  }
  SetState(PodWatcherState::kStopped);
}

absl::optional<PodInfo> PodWatcher::FindPod(absl::string_view uid) const {
  return store_.FindPod(uid, absl::Now());
}

uint64_t PodWatcher::Generation() const { return store_.generation(); }

absl::optional<ContainerMeta> PodWatcher::FindContainer(
    absl::string_view container_id) const {
  return store_.FindContainer(container_id, absl::Now());
}

absl::optional<PodInfo> PodWatcher::WaitForPod(absl::string_view uid,
                                               absl::Duration max) const {
  if (max < absl::ZeroDuration()) max = absl::ZeroDuration();
  return store_.WaitForPod(uid, absl::Now() + max);
}

std::vector<PodInfo> PodWatcher::Pods() const {
  return store_.Pods(/*include_tombstones=*/false, absl::Now());
}

bool PodWatcher::Synced() const {
  absl::MutexLock lock(&mu_);
  return synced_;
}

bool PodWatcher::WaitForSync(absl::Duration max) const {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return synced_ || stopped_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), max);
  return synced_;
}

PodWatcherState PodWatcher::ConnectionState() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

PodWatcherCounters PodWatcher::Counters() const {
  PodWatcherCounters c;
  {
    absl::MutexLock lock(&mu_);
    c = counters_;
  }
  store_.ExpireTombstones(absl::Now());
  c.pods = store_.live_pods();
  c.tombstones = store_.tombstones();
  c.containers = store_.containers();
  return c;
}

void PodWatcher::RestartWatchForTesting(absl::string_view resource_version) {
  {
    absl::MutexLock lock(&mu_);
    forced_resource_version_ = std::string(resource_version);
  }
  restart_watch_.store(true);
}

}  // namespace k8s
}  // namespace execmon
