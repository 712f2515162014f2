// Tests of the user-space twin of the kernel's build-ID reader
// (agent/elf/note_walker.h, running the rules of bpf/elf_rules.h) and of the
// libelf reader (agent/elf/build_id_file.h), on crafted images and on the
// system's own binaries, with libelf and readelf as oracles.
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/elf/build_id_file.h"
#include "agent/elf/note_walker.h"
#include "bpf/elf_rules.h"
#include "gtest/gtest.h"
#include "tests/unit/elf_builder.h"

namespace execmon {
namespace {

using ::execmon::testing::AbiTagNote;
using ::execmon::testing::BuildIdNote;
using ::execmon::testing::ElfBuilder;
using ::execmon::testing::kEtDyn;
using ::execmon::testing::kEtExec;
using ::execmon::testing::kEtRel;
using ::execmon::testing::kGnuName;
using ::execmon::testing::kNtGnuBuildId;
using ::execmon::testing::kPtLoad;
using ::execmon::testing::kPtNote;
using ::execmon::testing::Note;
using ::execmon::testing::Phdr;
using ::execmon::testing::PropertyNote;
using ::execmon::testing::PutLeAt;
using ::execmon::testing::RawNote;
using ::execmon::testing::TestId;

std::string ErrorName(unsigned error) {
  switch (error) {
    case EM_BID_OK:
      return "EM_BID_OK";
    case EM_BID_ERR_PENDING:
      return "EM_BID_ERR_PENDING";
    case EM_BID_ERR_NOT_ELF:
      return "EM_BID_ERR_NOT_ELF";
    case EM_BID_ERR_NO_NOTE:
      return "EM_BID_ERR_NO_NOTE";
    case EM_BID_ERR_READ_FAULT:
      return "EM_BID_ERR_READ_FAULT";
    case EM_BID_ERR_BAD_PHDRS:
      return "EM_BID_ERR_BAD_PHDRS";
    case EM_BID_ERR_BAD_NOTE:
      return "EM_BID_ERR_BAD_NOTE";
    case EM_BID_ERR_BAD_SIZE:
      return "EM_BID_ERR_BAD_SIZE";
    case EM_BID_ERR_LIMIT:
      return "EM_BID_ERR_LIMIT";
    default:
      return absl::StrCat("em_bid_error(", error, ")");
  }
}

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

// The twin found exactly `id`.
::testing::AssertionResult FoundId(const WalkResult& r, std::string_view id) {
  if (r.error != EM_BID_OK) {
    return ::testing::AssertionFailure()
           << "walk failed with " << ErrorName(r.error) << ", want ID "
           << Hex(id);
  }
  if (r.build_id != id) {
    return ::testing::AssertionFailure()
           << "walk returned ID " << Hex(r.build_id) << ", want " << Hex(id);
  }
  return ::testing::AssertionSuccess();
}

// The twin rejected the image with exactly `want`, and returned no ID.
::testing::AssertionResult Rejected(const WalkResult& r, unsigned want) {
  if (r.error != want) {
    return ::testing::AssertionFailure()
           << "walk returned " << ErrorName(r.error) << " (ID "
           << Hex(r.build_id) << "), want " << ErrorName(want);
  }
  if (!r.build_id.empty()) {
    return ::testing::AssertionFailure()
           << ErrorName(want) << " but an ID came back: " << Hex(r.build_id);
  }
  return ::testing::AssertionSuccess();
}

WalkResult WalkImage(const std::vector<uint8_t>& image) {
  return WalkBuildIdInFile(image);
}

// A scratch directory, removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = ::testing::TempDir() + "execmon_elf_test_XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

  std::string Write(const std::string& name, std::string_view bytes) {
    const std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return file;
  }
  std::string Write(const std::string& name,
                    const std::vector<uint8_t>& bytes) {
    return Write(name,
                 std::string_view(reinterpret_cast<const char*>(bytes.data()),
                                  bytes.size()));
  }

 private:
  std::string path_;
};

// Both readers, the twin (kernel rules) and libelf, find exactly `id`.
void ExpectBothFind(const std::vector<uint8_t>& image, std::string_view id) {
  EXPECT_TRUE(FoundId(WalkImage(image), id)) << "(kernel-rules twin)";
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.Write("image", image);
  absl::StatusOr<std::string> file_id = ReadBuildIdFile(path);
  ASSERT_TRUE(file_id.ok()) << "(libelf) " << file_id.status();
  EXPECT_EQ(Hex(*file_id), Hex(id)) << "(libelf)";
}

// n empty 12-byte notes, none a build ID.
std::string TinyNotes(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += RawNote(0, 0, 0x99, "");
  return out;
}

// ---------------------------------------------------------------------------
// Well-formed images: class x type x ID length.

struct ValidCase {
  bool is64;
  uint16_t type;
  size_t id_len;
};

void PrintTo(const ValidCase& c, std::ostream* os) {
  *os << (c.is64 ? "ELF64 " : "ELF32 ")
      << (c.type == kEtExec ? "ET_EXEC" : "ET_DYN") << ", " << c.id_len
      << "-byte ID";
}

class WalkValidImageTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(WalkValidImageTest, FindsTheExactBuildId) {
  const ValidCase& c = GetParam();
  ElfBuilder b(c.is64, c.type);
  const std::string id = TestId(c.id_len, 0xa1);
  b.AddNoteSegment(BuildIdNote(id) + AbiTagNote());
  ExpectBothFind(b.Build(), id);
}

INSTANTIATE_TEST_SUITE_P(
    ClassTypeIdLength, WalkValidImageTest,
    ::testing::Values(ValidCase{true, kEtDyn, 20}, ValidCase{true, kEtDyn, 8},
                      ValidCase{true, kEtDyn, 1}, ValidCase{true, kEtExec, 20},
                      ValidCase{true, kEtExec, 8}, ValidCase{true, kEtExec, 1},
                      ValidCase{false, kEtDyn, 20}, ValidCase{false, kEtDyn, 8},
                      ValidCase{false, kEtDyn, 1},
                      ValidCase{false, kEtExec, 20},
                      ValidCase{false, kEtExec, 8},
                      ValidCase{false, kEtExec, 1}),
    [](const ::testing::TestParamInfo<ValidCase>& info) {
      return absl::StrCat(info.param.is64 ? "Elf64" : "Elf32", "_",
                          info.param.type == kEtExec ? "Exec" : "Dyn", "_Id",
                          info.param.id_len);
    });

// ---------------------------------------------------------------------------
// Layouts of real binaries.

TEST(WalkLayoutTest, BuildIdInSecondNoteSegment) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20);
  b.AddNoteSegment(AbiTagNote());
  b.AddNoteSegment(BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, BuildIdInThirdNoteSegment) {
  ElfBuilder b(false, kEtExec);
  const std::string id = TestId(20, 0x40);
  b.AddNoteSegment(AbiTagNote());
  b.AddNoteSegment(Note(0x100, std::string_view("Xen\0", 4), "abc"));
  b.AddNoteSegment(BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, BuildIdAfterOtherNotesInOneSegment) {
  ElfBuilder b(true, kEtExec);
  const std::string id = TestId(20, 0x10);
  // ABI tag, an odd-sized vendor note (name and desc need padding), ID.
  b.AddNoteSegment(AbiTagNote() +
                   Note(0x1234, std::string_view("Linux\0", 6), "xyz") +
                   BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

// x86-64 binaries from GNU ld: an 8-aligned PT_NOTE holding
// .note.gnu.property, then a 4-aligned one with the build ID and ABI tag
// (readelf -lW /usr/bin/true).
TEST(WalkLayoutTest, BuildIdAfterEightAlignedPropertySegment) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0xc0);
  b.AddNoteSegment(PropertyNote(), 8);
  b.AddNoteSegment(BuildIdNote(id) + AbiTagNote(), 4);
  ExpectBothFind(b.Build(), id);
}

// One 8-aligned PT_NOTE holding property and build-ID notes. In an
// 8-aligned note the descriptor starts at align8(12 + namesz) from the
// note, i.e. at +16 for "GNU\0" -- not at 12 + align8(namesz) = +20.
TEST(WalkLayoutTest, BuildIdInEightAlignedSegmentIsReadAtItsGabiOffset) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x21);
  b.AddNoteSegment(PropertyNote() + BuildIdNote(id, 8), 8);
  ExpectBothFind(b.Build(), id);
}

// In an 8-aligned segment names and descriptors are padded to 8: a note
// walked with 4-byte padding would land mid-padding and misparse the next.
TEST(WalkLayoutTest, NotesInEightAlignedSegmentArePaddedToEightBytes) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x3a);
  b.AddNoteSegment(Note(0x100, std::string_view("Linux\0", 6), "abcde", 8) +
                       Note(0x101, kGnuName, "twelve bytes", 8) +
                       BuildIdNote(id, 8),
                   8);
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, LoneBuildIdNoteInEightAlignedSegmentIsNeverAWrongId) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x61);
  b.AddNoteSegment(BuildIdNote(id, 8), 8);
  const WalkResult r = WalkImage(b.Build());
  // Either the right ID or an error; a shifted read would return bytes
  // 4..19 of the ID plus padding.
  if (r.error == EM_BID_OK) {
    EXPECT_EQ(Hex(r.build_id), Hex(id));
  } else {
    EXPECT_TRUE(r.build_id.empty());
  }
  EXPECT_TRUE(FoundId(r, id));
}

TEST(WalkLayoutTest, BuildIdBeyondTheFirstPage) {
  for (bool is64 : {true, false}) {
    SCOPED_TRACE(is64 ? "Elf64" : "Elf32");
    ElfBuilder b(is64, kEtDyn);
    const std::string id = TestId(20, 0x33);
    b.SetCursor(0x1804);
    const uint64_t off = b.AddNoteSegment(BuildIdNote(id));
    ASSERT_GT(off, 4096u);
    ExpectBothFind(b.Build(), id);
  }
}

// The PT_NOTE lies in a second PT_LOAD whose p_vaddr - p_offset differs
// from the first one's: addresses must go through p_vaddr and the bias.
TEST(WalkLayoutTest, NotesInSecondLoadSegmentWithShiftedVaddr) {
  for (uint16_t type : {kEtDyn, kEtExec}) {
    SCOPED_TRACE(type == kEtExec ? "ET_EXEC" : "ET_DYN");
    ElfBuilder b(true, type);
    b.load0_filesz = 0x1000;
    const std::string id = TestId(20, 0x70);
    b.SetCursor(0x1010);
    const std::string notes = BuildIdNote(id);
    const uint64_t off = b.Place(notes, 4);
    Phdr load;
    load.type = kPtLoad;
    load.offset = 0x1000;
    load.vaddr = b.VaddrOf(0x3000);
    load.filesz = load.memsz = 0x1000;
    load.align = 0x1000;
    b.AddPhdr(load);
    Phdr note;
    note.type = kPtNote;
    note.offset = off;
    note.vaddr = b.VaddrOf(0x3000 + (off - 0x1000));
    note.filesz = note.memsz = notes.size();
    note.align = 4;
    b.AddPhdr(note);
    std::vector<uint8_t> image = b.Build();
    image.resize(0x2000, 0);  // the second PT_LOAD's full p_filesz
    ExpectBothFind(image, id);
  }
}

// The first PT_LOAD of file offset 0 defines the bias; a later one (here
// with a bogus p_vaddr) does not.
TEST(WalkLayoutTest, FirstLoadAtOffsetZeroDefinesTheBias) {
  for (uint16_t type : {kEtDyn, kEtExec}) {
    SCOPED_TRACE(type == kEtExec ? "ET_EXEC" : "ET_DYN");
    ElfBuilder b(true, type);
    const std::string id = TestId(20, 0x5b);
    b.AddNoteSegment(BuildIdNote(id));
    Phdr other;
    other.type = kPtLoad;
    other.vaddr = b.VaddrOf(0x7000000);
    other.filesz = other.memsz = 0x100;
    other.align = 0x1000;
    b.AddPhdr(other);
    EXPECT_TRUE(FoundId(WalkImage(b.Build()), id));
  }
}

// Only p_vaddr and p_filesz locate a note segment: p_paddr and p_memsz
// (here bogus) are not used, in either class.
TEST(WalkLayoutTest, NoteSegmentIsLocatedByVaddrAndFileszOnly) {
  for (bool is64 : {true, false}) {
    SCOPED_TRACE(is64 ? "Elf64" : "Elf32");
    ElfBuilder b(is64, kEtExec);
    const std::string id = TestId(20, 0x6c);
    const std::string notes = BuildIdNote(id);
    const uint64_t off = b.Place(notes, 4);
    Phdr note;
    note.type = kPtNote;
    note.offset = off;
    note.vaddr = b.VaddrOf(off);
    note.paddr = 0xdead000;
    note.filesz = notes.size();
    note.memsz = 16;  // too small for the note: must not be used
    note.align = 4;
    b.AddPhdr(note);
    ExpectBothFind(b.Build(), id);
  }
}

TEST(WalkLayoutTest, NoteSegmentAlignZeroAndOneMeanFourByteNotes) {
  for (uint64_t align : {0, 1}) {
    SCOPED_TRACE(absl::StrCat("p_align ", align));
    ElfBuilder b(true, kEtDyn);
    const std::string id = TestId(5, 0x90);  // needs 3 bytes of padding
    b.AddNoteSegment(AbiTagNote() + BuildIdNote(id) + AbiTagNote(), align);
    ExpectBothFind(b.Build(), id);
  }
}

TEST(WalkLayoutTest, FirstBuildIdNoteWins) {
  ElfBuilder b(true, kEtDyn);
  const std::string first = TestId(20, 0x01);
  b.AddNoteSegment(BuildIdNote(first) + BuildIdNote(TestId(20, 0x81)));
  b.AddNoteSegment(BuildIdNote(TestId(8, 0xf0)));
  ExpectBothFind(b.Build(), first);
}

TEST(WalkLayoutTest, TypeThreeNamedGnxIsSkipped) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x44);
  b.AddNoteSegment(
      Note(kNtGnuBuildId, std::string_view("GNX\0", 4), TestId(20, 0xe0)) +
      BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, OnlyATypeThreeNamedGnxIsNoNote) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(
      Note(kNtGnuBuildId, std::string_view("GNX\0", 4), TestId(20, 0xe0)));
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
}

TEST(WalkLayoutTest, TypeThreeNamedGnuWithoutNulIsNotABuildId) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(Note(kNtGnuBuildId, "GNU", TestId(20)));  // namesz 3
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
}

TEST(WalkLayoutTest, TrailingBytesShorterThanANoteHeaderEndTheSegment) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x55);
  // 11 trailing bytes that would be a hostile note if read as one.
  b.AddNoteSegment(AbiTagNote() + std::string(11, '\xff'));
  b.AddNoteSegment(BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, EightNoteSegmentsAreAllWalked) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x88);
  for (int i = 0; i < EM_MAX_NOTE_SEGS - 1; ++i) b.AddNoteSegment(AbiTagNote());
  b.AddNoteSegment(BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, OneHundredTwentyEightProgramHeadersAreAccepted) {
  ElfBuilder b(true, kEtDyn, /*data_start=*/0x2000);
  const std::string id = TestId(20, 0x12);
  b.AddNoteSegment(BuildIdNote(id));
  Phdr filler;
  filler.type = 0x6474e551;  // PT_GNU_STACK
  while (b.AllPhdrs(0).size() < EM_MAX_PHNUM) b.AddPhdr(filler);
  ExpectBothFind(b.Build(), id);
}

TEST(WalkLayoutTest, NoteSegmentOfExactlyOneMebibyteIsAccepted) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x31);
  std::string notes = BuildIdNote(id);
  notes.resize(EM_MAX_NOTE_SEG_SIZE, '\0');  // then empty 12-byte notes
  b.AddNoteSegment(notes);
  ExpectBothFind(b.Build(), id);
}

// ---------------------------------------------------------------------------
// The note-step budget (EM_MAX_NOTE_STEPS): one step per note and one per
// segment change.

TEST(WalkStepBudgetTest, SixtyThreeNotesBeforeTheBuildIdFit) {
  ElfBuilder b(true, kEtDyn);
  const std::string id = TestId(20, 0x63);
  b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS - 1) + BuildIdNote(id));
  ExpectBothFind(b.Build(), id);
}

TEST(WalkStepBudgetTest, SixtyFourNotesBeforeTheBuildIdAreLimit) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS) + BuildIdNote(TestId(20)));
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_LIMIT));
}

TEST(WalkStepBudgetTest, SegmentChangesCostAStep) {
  {
    SCOPED_TRACE("62 notes + segment change + ID: 64 steps");
    ElfBuilder b(true, kEtDyn);
    const std::string id = TestId(20, 0x62);
    b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS - 2));
    b.AddNoteSegment(BuildIdNote(id));
    EXPECT_TRUE(FoundId(WalkImage(b.Build()), id));
  }
  {
    SCOPED_TRACE("63 notes + segment change + ID: 65 steps");
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS - 1));
    b.AddNoteSegment(BuildIdNote(TestId(20)));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_LIMIT));
  }
}

TEST(WalkStepBudgetTest, WalkThatEndsWithinTheBudgetWithoutIdIsNoNote) {
  {
    SCOPED_TRACE("61 notes + segment end + all-walked = 63 steps");
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS - 3));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
  }
  // The walk completes (every segment walked, no ID) on the budget's last
  // step: that is "no note", not "more notes than the walk allows".
  {
    SCOPED_TRACE("62 notes + segment end + all-walked = 64 steps");
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS - 2));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
  }
  {
    SCOPED_TRACE("63 notes + segment end = 64 steps, every note examined");
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS - 1));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
  }
  {
    SCOPED_TRACE("64 notes: the budget runs out inside the segment");
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(TinyNotes(EM_MAX_NOTE_STEPS));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_LIMIT));
  }
}

// ---------------------------------------------------------------------------
// Hostile headers.

TEST(WalkHostileTest, TooManyProgramHeadersIsLimit) {
  ElfBuilder b(true, kEtDyn, /*data_start=*/0x2000);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  Phdr filler;
  filler.type = 0x6474e551;
  while (b.AllPhdrs(0).size() < EM_MAX_PHNUM + 1) b.AddPhdr(filler);
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_LIMIT));
}

TEST(WalkHostileTest, PhnumXnumIsLimit) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.e_phnum = 0xffff;
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_LIMIT));
}

TEST(WalkHostileTest, ZeroProgramHeadersIsNoNote) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.e_phnum = 0;
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
}

TEST(WalkHostileTest, WrongPhentsizeIsBadPhdrs) {
  for (bool is64 : {true, false}) {
    SCOPED_TRACE(is64 ? "Elf64 with 32-byte phdrs" : "Elf32 with 56-byte");
    ElfBuilder b(is64, kEtDyn);
    b.AddNoteSegment(BuildIdNote(TestId(20)));
    b.e_phentsize = is64 ? EM_PHDR32_SIZE : EM_PHDR64_SIZE;
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_PHDRS));
  }
}

TEST(WalkHostileTest, PhoffInsideTheElfHeaderIsBadPhdrs) {
  for (bool is64 : {true, false}) {
    SCOPED_TRACE(is64 ? "Elf64" : "Elf32");
    ElfBuilder b(is64, kEtDyn);
    b.AddNoteSegment(BuildIdNote(TestId(20)));
    b.e_phoff = is64 ? 8 : 0;
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_PHDRS));
  }
}

TEST(WalkHostileTest, PhoffPastMapSizeIsBadPhdrs) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.load0_filesz = 0x800;  // map_size
  b.e_phoff = 0x900;
  std::vector<uint8_t> image = b.Build();
  image.resize(0x2000, 0);
  EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_BAD_PHDRS));
}

TEST(WalkHostileTest, PhdrTableEndingPastMapSizeIsBadPhdrs) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.load0_filesz = 0x800;
  b.e_phoff = 0x800 - EM_PHDR64_SIZE;  // 2 phdrs: the second one overhangs
  std::vector<uint8_t> image = b.Build();
  image.resize(0x2000, 0);
  EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_BAD_PHDRS));
}

TEST(WalkHostileTest, PhoffPlusTableSizeOverflowIsBadPhdrs) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.e_phoff = ~uint64_t{0} - 7;  // 2^64 - 8: phoff + 2 * 56 wraps to 104
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_PHDRS));
  // Directly, with a map covering almost the whole address space.
  const std::vector<uint8_t> image = b.Build();
  auto read = [&](uint64_t addr, void* dst, size_t len) {
    if (addr > image.size() || len > image.size() - addr) return false;
    std::memcpy(dst, image.data() + addr, len);
    return true;
  };
  EXPECT_TRUE(Rejected(WalkBuildId(read, 0, ~uint64_t{0}, image.size()),
                       EM_BID_ERR_BAD_PHDRS));
}

TEST(WalkHostileTest, NoLoadAtOffsetZeroIsBadPhdrs) {
  ElfBuilder b(true, kEtDyn);
  b.load_at_zero = false;
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  Phdr load;
  load.type = kPtLoad;
  load.offset = 0x1000;
  load.vaddr = 0x1000;
  load.filesz = load.memsz = 0x10;
  b.AddPhdr(load);
  std::vector<uint8_t> image = b.Build();
  image.resize(0x1010, 0);
  EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_BAD_PHDRS));
}

TEST(WalkHostileTest, NoNoteSegmentIsNoNote) {
  for (bool is64 : {true, false}) {
    SCOPED_TRACE(is64 ? "Elf64" : "Elf32");
    ElfBuilder b(is64, kEtExec);
    b.Place(BuildIdNote(TestId(20)));  // in the file, but in no PT_NOTE
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_NO_NOTE));
  }
}

TEST(WalkHostileTest, BadMagicIsNotElf) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  std::vector<uint8_t> image = b.Build();
  image[1] = 'X';
  EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_NOT_ELF));
}

TEST(WalkHostileTest, ElfClassNoneAndUnknownAreNotElf) {
  for (uint8_t cls : {0, 3}) {
    SCOPED_TRACE(absl::StrCat("EI_CLASS ", cls));
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(BuildIdNote(TestId(20)));
    std::vector<uint8_t> image = b.Build();
    image[4] = cls;
    EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_NOT_ELF));
  }
}

TEST(WalkHostileTest, BigEndianAndDataNoneAreNotElf) {
  for (uint8_t data : {2, 0}) {
    SCOPED_TRACE(absl::StrCat("EI_DATA ", data));
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(BuildIdNote(TestId(20)));
    std::vector<uint8_t> image = b.Build();
    image[5] = data;
    EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_NOT_ELF));
  }
}

// ---------------------------------------------------------------------------
// Hostile note segments and notes.

TEST(WalkHostileTest, NoteSegmentOverOneMebibyteIsBadNote) {
  ElfBuilder b(true, kEtDyn);
  std::string notes = BuildIdNote(TestId(20));
  notes.resize(EM_MAX_NOTE_SEG_SIZE + 4, '\0');
  b.AddNoteSegment(notes);
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

TEST(WalkHostileTest, NoteSegmentSizeThatWouldTruncateToU32IsBadNote) {
  ElfBuilder b(true, kEtDyn);
  const std::string notes = BuildIdNote(TestId(20));
  // 2^32 + 36: as a __u32 this would be 36, a valid size.
  b.AddNoteSegment(notes, 4, (uint64_t{1} << 32) + notes.size());
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

TEST(WalkHostileTest, NoteSegmentAlignThreeIsBadNote) {
  for (uint64_t align : {3, 2, 16}) {
    SCOPED_TRACE(absl::StrCat("p_align ", align));
    ElfBuilder b(true, kEtDyn);
    b.AddNoteSegment(BuildIdNote(TestId(20)), align);
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
  }
}

TEST(WalkHostileTest, NoteSegmentSmallerThanANoteHeaderIsBadNote) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)), 4, EM_NHDR_SIZE - 1);
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

TEST(WalkHostileTest, BadNoteSegmentAfterTheBuildIdFailsTheWholeImage) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.AddNoteSegment(AbiTagNote(), 3);
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

TEST(WalkHostileTest, MoreThanEightNoteSegmentsIsLimit) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));  // even with the ID first
  for (int i = 0; i < EM_MAX_NOTE_SEGS; ++i) b.AddNoteSegment(AbiTagNote());
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_LIMIT));
}

TEST(WalkHostileTest, NameszRunningPastTheSegmentIsBadNote) {
  for (uint32_t namesz : {25u, 1000u, 0xfffffffcu, 0xffffffffu}) {
    SCOPED_TRACE(absl::StrCat("namesz ", namesz));
    ElfBuilder b(true, kEtDyn);
    // 36-byte segment: header + 24 bytes.
    b.AddNoteSegment(RawNote(namesz, 4, kNtGnuBuildId,
                             std::string("GNU\0", 4) + TestId(20)));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
  }
}

TEST(WalkHostileTest, DescszRunningPastTheSegmentIsBadNote) {
  for (uint32_t descsz : {21u, 0x10000u, 0xfffffffcu, 0xffffffffu}) {
    SCOPED_TRACE(absl::StrCat("descsz ", descsz));
    ElfBuilder b(true, kEtDyn);
    // 36-byte segment: room for exactly 20 descriptor bytes.
    b.AddNoteSegment(RawNote(4, descsz, kNtGnuBuildId,
                             std::string("GNU\0", 4) + TestId(20)));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
  }
}

TEST(WalkHostileTest, OversizedNoteBeforeTheBuildIdIsBadNote) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(RawNote(4, 0xffffffff, 1, std::string("GNU\0", 4)) +
                   BuildIdNote(TestId(20)));
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

TEST(WalkHostileTest, BuildIdDescszZeroIsBadSize) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(""));
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_SIZE));
}

TEST(WalkHostileTest, BuildIdDescszTwentyOneIsBadSize) {
  for (bool is64 : {true, false}) {
    SCOPED_TRACE(is64 ? "Elf64" : "Elf32");
    ElfBuilder b(is64, kEtDyn);
    b.AddNoteSegment(BuildIdNote(TestId(21)));
    EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_SIZE));
  }
}

// ---------------------------------------------------------------------------
// Faults.

// A file cut inside its notes: the PT_NOTE runs past the end of the file,
// which is malformed (as libelf says) before any read could fault.
TEST(WalkFaultTest, FileCutInsideItsNotesIsBadNote) {
  ElfBuilder b(true, kEtDyn);
  b.SetCursor(0x1000);
  const uint64_t off = b.AddNoteSegment(AbiTagNote() + BuildIdNote(TestId(20)));
  const std::vector<uint8_t> full = b.Build();
  // Cut inside the first note header, then inside the build ID bytes.
  for (uint64_t cut : {off + 6, off + 32 + 16 + 10}) {
    SCOPED_TRACE(absl::StrCat("file cut at ", cut));
    std::vector<uint8_t> image(full.begin(), full.begin() + cut);
    EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_BAD_NOTE));
  }
}

TEST(WalkFaultTest, FileShorterThanAnElfHeaderReadIsReadFault) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  std::vector<uint8_t> image = b.Build();
  image.resize(40);
  EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_READ_FAULT));
  EXPECT_TRUE(Rejected(WalkImage({}), EM_BID_ERR_READ_FAULT));
}

// A note whose file range no PT_LOAD maps cannot be read as the file's
// bytes from memory: an error, though libelf reads it from the file.
TEST(WalkHostileTest, NotesOutsideEveryLoadSegmentAreBadNote) {
  ElfBuilder b(true, kEtDyn);
  b.load0_filesz = 0x400;  // ELF and program headers only
  b.SetCursor(0x800);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

// A note the PT_LOAD maps only in part is not read either.
TEST(WalkHostileTest, NoteStraddlingTheEndOfItsLoadSegmentIsBadNote) {
  ElfBuilder b(true, kEtDyn);
  b.SetCursor(0x800);
  const uint64_t off = b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.load0_filesz = off + 8;
  EXPECT_TRUE(Rejected(WalkImage(b.Build()), EM_BID_ERR_BAD_NOTE));
}

// Review finding (issue 11): a PT_NOTE whose p_vaddr points at other bytes
// than its p_offset. The file (readelf, libelf) says the note at p_offset;
// reading at p_vaddr gave the other note's ID. Both walkers must name the
// note at p_offset, in both classes and types.
TEST(WalkHostileTest, NoteIsReadAtItsFileOffsetNotAtItsVaddr) {
  for (bool is64 : {true, false}) {
    for (uint16_t type : {kEtDyn, kEtExec}) {
      SCOPED_TRACE(absl::StrCat(is64 ? "Elf64 " : "Elf32 ",
                                type == kEtExec ? "ET_EXEC" : "ET_DYN"));
      ElfBuilder b(is64, type);
      const std::string decoy = TestId(20, 0xaa);
      const std::string real = TestId(20, 0xbb);
      const uint64_t decoy_off = b.Place(BuildIdNote(decoy), 4);
      const std::string notes = BuildIdNote(real);
      const uint64_t off = b.Place(notes, 4);
      Phdr note;
      note.type = kPtNote;
      note.offset = off;
      note.vaddr = note.paddr = b.VaddrOf(decoy_off);
      note.filesz = note.memsz = notes.size();
      note.align = 4;
      b.AddPhdr(note);
      ExpectBothFind(b.Build(), real);
    }
  }
}

// Review finding (issue 11): a PT_NOTE whose p_offset lies past the end of
// the file, with a p_vaddr at a well-formed note. libelf calls the file
// malformed; the twin must not name the note its p_vaddr points at.
TEST(WalkHostileTest, NoteSegmentPastTheEndOfTheFileIsBadNote) {
  for (uint64_t past : {uint64_t{0}, uint64_t{0x10000}}) {
    SCOPED_TRACE(past);
    ElfBuilder b(true, kEtDyn);
    const std::string notes = BuildIdNote(TestId(20, 0xaa));
    const uint64_t decoy_off = b.Place(notes, 4);
    b.SetCursor(0x1000);
    b.Place("tail", 4);
    const std::vector<uint8_t> probe = b.Build();
    Phdr note;
    note.type = kPtNote;
    note.offset = probe.size() + past;  // starts at or after the end
    note.vaddr = note.paddr = b.VaddrOf(decoy_off);
    note.filesz = note.memsz = notes.size();
    note.align = 4;
    b.AddPhdr(note);
    std::vector<uint8_t> image = b.Build();
    image.resize(probe.size());  // the phdr table does not move the end
    EXPECT_TRUE(Rejected(WalkImage(image), EM_BID_ERR_BAD_NOTE));
    ScratchDir dir;
    const std::string path = dir.Write("past_eof", image);
    absl::StatusOr<std::string> id = ReadBuildIdFile(path);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument)
        << id.status();
  }
}

TEST(WalkFaultTest, UnreadableImageIsReadFault) {
  auto fault = [](uint64_t, void*, size_t) { return false; };
  EXPECT_TRUE(Rejected(WalkBuildId(fault, 0x400000, 0x1000, 0x1000),
                       EM_BID_ERR_READ_FAULT));
}

TEST(WalkFaultTest, UnreadableProgramHeadersAreReadFault) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  const std::vector<uint8_t> image = b.Build();
  const uint64_t base = 0x7f0000000000;
  // Only the ELF header is readable; map_size claims the whole file.
  auto read = [&](uint64_t addr, void* dst, size_t len) {
    if (addr < base || addr - base + len > EM_EHDR64_SIZE) return false;
    std::memcpy(dst, image.data() + (addr - base), len);
    return true;
  };
  EXPECT_TRUE(Rejected(WalkBuildId(read, base, image.size(), image.size()),
                       EM_BID_ERR_READ_FAULT));
}

// ---------------------------------------------------------------------------
// ReadBuildIdFile (libelf) on crafted files: results and error messages.

class ReadBuildIdFileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  ScratchDir dir_;
};

TEST_F(ReadBuildIdFileTest, ThirtyTwoBitExecutable) {
  ElfBuilder b(false, kEtExec);
  b.AddNoteSegment(AbiTagNote() + BuildIdNote(TestId(20, 0x50)));
  const std::string path = dir_.Write("elf32", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(Hex(*id), Hex(TestId(20, 0x50)));
}

TEST_F(ReadBuildIdFileTest, RelocatableObjectUsesNoteSections) {
  ElfBuilder b(true, kEtRel);
  b.load_at_zero = false;
  b.AddNoteSection(".note.gnu.property", PropertyNote(), 8);
  b.AddNoteSection(".note.ABI-tag", AbiTagNote());
  b.AddNoteSection(".note.gnu.build-id", BuildIdNote(TestId(20, 0x77)));
  const std::string path = dir_.Write("object.o", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(Hex(*id), Hex(TestId(20, 0x77)));
}

TEST_F(ReadBuildIdFileTest, RelocatableObjectWithoutBuildIdIsNotFound) {
  ElfBuilder b(true, kEtRel);
  b.load_at_zero = false;
  b.AddNoteSection(".note.ABI-tag", AbiTagNote());
  const std::string path = dir_.Write("object.o", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(id.status().message(), path + ": no GNU build-ID note");
}

TEST_F(ReadBuildIdFileTest, NoNoteSegmentIsNotFound) {
  ElfBuilder b(true, kEtDyn);
  b.Place(BuildIdNote(TestId(20)));
  const std::string path = dir_.Write("nonote", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(id.status().message(), path + ": no GNU build-ID note");
}

TEST_F(ReadBuildIdFileTest, GnxNoteOnlyIsNotFound) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(
      Note(kNtGnuBuildId, std::string_view("GNX\0", 4), TestId(20)));
  const std::string path = dir_.Write("gnx", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(id.status().message(), path + ": no GNU build-ID note");
}

TEST_F(ReadBuildIdFileTest, BuildIdOfTwentyOneBytesIsInvalid) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(21)));
  const std::string path = dir_.Write("id21", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(),
            path + ": build-ID note of 21 bytes (want 1..20)");
}

TEST_F(ReadBuildIdFileTest, BuildIdOfZeroBytesIsInvalid) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(""));
  const std::string path = dir_.Write("id0", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(),
            path + ": build-ID note of 0 bytes (want 1..20)");
}

TEST_F(ReadBuildIdFileTest, OverflowingNoteBeforeTheBuildIdIsMalformed) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(RawNote(0xffffffff, 4, 1, std::string("GNU\0", 4)) +
                   BuildIdNote(TestId(20)));
  const std::string path = dir_.Write("overflow", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(),
            path +
                ": malformed ELF: truncated or overflowing note at offset "
                "0 of PT_NOTE segment 1");
}

TEST_F(ReadBuildIdFileTest, NoteSegmentPastTheEndOfFileIsMalformed) {
  ElfBuilder b(true, kEtDyn);
  b.SetCursor(0x1000);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  std::vector<uint8_t> image = b.Build();
  image.resize(0x1000 + 20);
  const std::string path = dir_.Write("truncated", image);
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(id.status().message(),
                               path + ": malformed ELF: PT_NOTE segment 1: "))
      << id.status();
}

TEST_F(ReadBuildIdFileTest, ProgramHeadersPastTheEndOfFileAreMalformed) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  b.e_phoff = 0x100000;
  const std::string path = dir_.Write("phoff", b.Build());
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StartsWith(id.status().message(), path + ": malformed ELF: "))
      << id.status();
}

TEST_F(ReadBuildIdFileTest, TextFileIsNotElf) {
  const std::string path = dir_.Write("script.sh", "#!/bin/sh\necho hi\n");
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(), path + ": not an ELF file");
}

TEST_F(ReadBuildIdFileTest, EmptyFileIsNotElf) {
  const std::string path = dir_.Write("empty", "");
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(), path + ": not an ELF file");
}

TEST_F(ReadBuildIdFileTest, ElfClassNoneIsNotElf) {
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  std::vector<uint8_t> image = b.Build();
  image[4] = 0;
  const std::string path = dir_.Write("classnone", image);
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(), path + ": not an ELF file");
}

TEST_F(ReadBuildIdFileTest, MissingFileIsNotFound) {
  const std::string path = dir_.path() + "/does-not-exist";
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(id.status().message(), path + ": " + std::strerror(ENOENT));
}

TEST_F(ReadBuildIdFileTest, DirectoryIsNotARegularFile) {
  absl::StatusOr<std::string> id = ReadBuildIdFile(dir_.path());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(), dir_.path() + ": not a regular file");
}

TEST_F(ReadBuildIdFileTest, FifoIsRejectedWithoutBlocking) {
  const std::string path = dir_.path() + "/fifo";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);  // must not hang
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message(), path + ": not a regular file");
}

TEST_F(ReadBuildIdFileTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads mode-000 files";
  ElfBuilder b(true, kEtDyn);
  b.AddNoteSegment(BuildIdNote(TestId(20)));
  const std::string path = dir_.Write("secret", b.Build());
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  absl::StatusOr<std::string> id = ReadBuildIdFile(path);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(id.status().message(), path + ": " + std::strerror(EACCES));
}

// ---------------------------------------------------------------------------
// Real binaries: twin == libelf == readelf.

std::optional<std::string> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The first "Build ID: <hex>" that `readelf -n` prints, or "" if none.
std::string ReadelfBuildId(const std::string& path) {
  const std::string cmd = "readelf -n '" + path + "' 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  pclose(pipe);
  const std::string_view key = "Build ID: ";
  const size_t at = output.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size();
  size_t end = start;
  while (end < output.size() &&
         std::isxdigit(static_cast<unsigned char>(output[end]))) {
    ++end;
  }
  return output.substr(start, end - start);
}

class SystemBinaryTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SystemBinaryTest, TwinLibelfAndReadelfAgree) {
  std::string path = GetParam();
  if (path == "/bin/bash" && !std::filesystem::exists(path)) {
    path = "/usr/bin/bash";
  }
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  const std::string readelf = ReadelfBuildId(path);
  ASSERT_FALSE(readelf.empty())
      << "readelf -n " << path << " printed no build ID";
  absl::StatusOr<std::string> libelf = ReadBuildIdFile(path);
  ASSERT_TRUE(libelf.ok()) << libelf.status();
  EXPECT_EQ(Hex(*libelf), readelf) << "(libelf vs readelf)";
  const std::optional<std::string> bytes = ReadFileBytes(path);
  ASSERT_TRUE(bytes.has_value());
  const WalkResult twin = WalkBuildIdInFile(absl::Span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()));
  EXPECT_EQ(ErrorName(twin.error), "EM_BID_OK") << "(kernel-rules twin)";
  EXPECT_EQ(Hex(twin.build_id), readelf) << "(kernel-rules twin vs readelf)";
}

INSTANTIATE_TEST_SUITE_P(
    Binaries, SystemBinaryTest,
    ::testing::Values("/usr/bin/true", "/bin/bash", "/usr/bin/python3",
                      "/lib/x86_64-linux-gnu/libc.so.6"),
    [](const ::testing::TestParamInfo<const char*>& info) {
      std::string name;
      for (const char* p = info.param; *p != '\0'; ++p) {
        name.push_back(std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_');
      }
      return name;
    });

// The twin over this very process's memory (the kernel's view of a loaded
// image: ld.so's layout, page-granular mappings), read through
// /proc/self/mem so a bad address is a fault, not a crash.
TEST(ProcessImageTest, LoadedObjectsAgreeWithLibelf) {
  const int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  if (mem < 0) GTEST_SKIP() << "/proc/self/mem: " << std::strerror(errno);
  struct Object {
    std::string path;
    uint64_t base;
    uint64_t map_size;
  };
  std::vector<Object> objects;
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* arg) {
        auto* out = static_cast<std::vector<Object>*>(arg);
        std::string path = info->dlpi_name != nullptr ? info->dlpi_name : "";
        if (path.empty()) path = "/proc/self/exe";  // the main program
        if (path[0] != '/') return 0;               // the vDSO
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == kPtLoad && ph.p_offset == 0) {
            out->push_back({path, info->dlpi_addr + ph.p_vaddr, ph.p_filesz});
            break;
          }
        }
        return 0;
      },
      &objects);
  ASSERT_FALSE(objects.empty());
  auto read = [mem](uint64_t addr, void* dst, size_t len) {
    return pread(mem, dst, len, static_cast<off_t>(addr)) ==
           static_cast<ssize_t>(len);
  };
  int checked = 0;
  for (const Object& o : objects) {
    SCOPED_TRACE(o.path);
    absl::StatusOr<std::string> libelf = ReadBuildIdFile(o.path);
    if (!libelf.ok()) continue;  // e.g. a test runner without build IDs
    struct stat st;
    ASSERT_EQ(stat(o.path.c_str(), &st), 0);
    const WalkResult twin = WalkBuildId(read, o.base, o.map_size,
                                        static_cast<uint64_t>(st.st_size));
    EXPECT_EQ(ErrorName(twin.error), "EM_BID_OK") << "(kernel-rules twin)";
    EXPECT_EQ(Hex(twin.build_id), Hex(*libelf));
    ++checked;
  }
  close(mem);
  EXPECT_GT(checked, 0) << "no loaded object with a build ID";
}

}  // namespace
}  // namespace execmon
