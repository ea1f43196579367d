#include <coring/serialize.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace {

// --- Types under test ---

struct member_hooked {
  int id = 0;
  std::string name;
  std::vector<double> weights;
  std::optional<std::string> note;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, name, weights, note);
  }
  friend bool operator==(const member_hooked&, const member_hooked&) = default;
};

}  // namespace

namespace geometry {

// Found by ADL: the hook lives next to the type, not inside it.
struct polygon {
  std::string label;
  std::vector<std::pair<float, float>> points;
  bool closed = false;
  friend bool operator==(const polygon&, const polygon&) = default;
};

template <class Archive>
void serialize(Archive& ar, polygon& p) {
  ar(p.label, p.points, p.closed);
}

}  // namespace geometry

namespace {

// A hook holding a C array and another hooked type.
struct with_arrays {
  char tag[4] = {};
  std::string parts[2];
  member_hooked inner;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(tag, parts, inner);
  }
  friend bool operator==(const with_arrays& a, const with_arrays& b) {
    return std::memcmp(a.tag, b.tag, sizeof a.tag) == 0 && a.parts[0] == b.parts[0] &&
           a.parts[1] == b.parts[1] && a.inner == b.inner;
  }
};

// Trivially copyable, so it travels as its bytes without a hook.
struct plain {
  std::int32_t a;
  double b;
  char c[3];
  friend bool operator==(const plain&, const plain&) = default;
};

// Trivially copyable but not default-constructible.
struct no_default {
  explicit no_default(int v) : value(v) {}
  int value;
  friend bool operator==(const no_default&, const no_default&) = default;
};

enum class colour : std::uint8_t { red = 1, green = 2, blue = 3 };
enum legacy { legacy_a, legacy_b = 70000 };

// A recursive type: its hook hands the archive a vector of itself.
struct tree {
  int value = 0;
  std::vector<tree> children;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(value, children);
  }
  friend bool operator==(const tree&, const tree&) = default;
};

// A hook whose type cannot be default-constructed, so it cannot be decoded.
struct hooked_without_default {
  explicit hooked_without_default(int v) : value(v) {}
  int value;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
};

// Decoding it throws, which leaves a variant holding it valueless.
struct throws_on_copy {
  throws_on_copy() = default;
  throws_on_copy(const throws_on_copy&) { throw std::runtime_error("copy"); }
  throws_on_copy& operator=(const throws_on_copy&) = default;
  template <class Archive>
  void serialize(Archive&) {}
};

// An allocator that counts allocations, to prove a hostile length allocates nothing.
inline int allocations = 0;

template <class T>
struct counting_allocator {
  using value_type = T;
  counting_allocator() = default;
  template <class U>
  counting_allocator(const counting_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    ++allocations;
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  friend bool operator==(const counting_allocator&, const counting_allocator&) = default;
};

// --- Helpers ---

template <class T>
T round_trip(const T& value) {
  std::string bytes = coring::encode_all(value);
  return std::get<0>(coring::decode_all<T>(bytes));
}

template <class T>
void check_round_trip(const T& value) {
  CAPTURE(coring::detail::pretty_type_name(coring::detail::type_name_v<T>));
  CHECK(round_trip(value) == value);
}

template <class... Ts>
void check_round_trips(const Ts&... values) {
  (check_round_trip(values), ...);
}

std::string u64_bytes(std::uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// Decodes a copy of `bytes` held in a heap block of exactly its size, so that
// AddressSanitizer catches a read one byte past the end.
template <class T>
void decode_exact(std::string_view bytes) {
  const std::vector<char> block(bytes.begin(), bytes.end());  // allocates exactly bytes.size()
  (void)coring::decode_all<T>(std::string_view(block.data(), block.size()));
}

// Every strict prefix of the encoding of `value` must throw decode_error.
template <class T>
void check_every_prefix_throws(const T& value) {
  std::string bytes = coring::encode_all(value);
  CAPTURE(coring::detail::pretty_type_name(coring::detail::type_name_v<T>));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    CHECK_THROWS_AS(decode_exact<T>(std::string_view(bytes).substr(0, n)), coring::decode_error);
  }
  CHECK_NOTHROW(decode_exact<T>(bytes));
}

std::string decode_message(auto&& decode) {
  try {
    decode();
  } catch (const coring::decode_error& e) {
    return e.what();
  }
  return "no exception";
}

member_hooked sample_member_hooked() { return {7, "seven", {0.5, 1.5}, std::string("note")}; }

geometry::polygon sample_polygon() { return {"triangle", {{0, 0}, {1, 0}, {0.5f, 1}}, true}; }

using nested_map = std::map<std::string, std::vector<std::optional<std::pair<int, std::string>>>>;
using mixed_variant = std::variant<int, std::string, std::vector<double>>;

nested_map sample_nested_map() {
  return {{"", {}},
          {"one", {std::nullopt}},
          {"two", {std::pair{1, std::string("a")}, std::nullopt, std::pair{-2, std::string(40, 'b')}}}};
}

}  // namespace

TEST_SUITE("runtime/serialize") {
  TEST_CASE("serializable is true exactly for the supported types, recursively") {
    static_assert(coring::serializable<int>);
    static_assert(coring::serializable<const double>);
    static_assert(coring::serializable<bool>);
    static_assert(coring::serializable<colour>);
    static_assert(coring::serializable<plain>);
    static_assert(coring::serializable<no_default>);
    static_assert(coring::serializable<std::monostate>);
    static_assert(coring::serializable<std::string>);
    static_assert(coring::serializable<std::vector<std::string>>);
    static_assert(coring::serializable<std::vector<bool>>);
    static_assert(coring::serializable<nested_map>);
    static_assert(coring::serializable<mixed_variant>);
    static_assert(coring::serializable<std::unordered_map<int, std::set<std::string>>>);
    static_assert(coring::serializable<std::tuple<int, std::string, std::array<char, 3>>>);
    static_assert(coring::serializable<member_hooked>);
    static_assert(coring::serializable<geometry::polygon>);
    static_assert(coring::serializable<tree>);
    static_assert(coring::serializable<int[4]>);

    static_assert(!coring::serializable<std::unique_ptr<int>>);
    static_assert(!coring::serializable<std::shared_ptr<int>>);
    static_assert(!coring::serializable<int*>);
    static_assert(!coring::serializable<const char*>);
    static_assert(!coring::serializable<int plain::*>);
    static_assert(!coring::serializable<void (*)()>);
    static_assert(!coring::serializable<int&>);
    static_assert(!coring::serializable<void>);
    static_assert(!coring::serializable<std::string_view>);
    static_assert(!coring::serializable<std::span<int>>);
    static_assert(!coring::serializable<std::reference_wrapper<int>>);
    static_assert(!coring::serializable<std::vector<std::unique_ptr<int>>>);
    static_assert(!coring::serializable<std::optional<int*>>);
    static_assert(!coring::serializable<std::array<int*, 2>>);
    static_assert(!coring::serializable<std::pair<int, std::string_view>>);
    static_assert(!coring::serializable<std::variant<int, const char*>>);
    static_assert(!coring::serializable<std::map<int, std::shared_ptr<int>>>);
    static_assert(!coring::serializable<std::tuple<int, std::vector<int*>>>);
    static_assert(!coring::serializable<std::vector<int[2]>>);
    static_assert(!coring::serializable<hooked_without_default>);
  }

  TEST_CASE("scalars, enums and trivially copyable structs round trip bit for bit") {
    check_round_trips(std::int8_t{-128}, std::uint16_t{65535}, -7, 0u, std::int64_t{INT64_MIN}, 3.25f, -0.0,
                      1e300, 'x', true, false, colour::blue, legacy_b, std::monostate{},
                      plain{-1, 2.5, {'a', 'b', 'c'}}, std::array<int, 3>{1, 2, 3}, no_default{42});
  }

  TEST_CASE("strings and containers round trip, empty or not") {
    check_round_trips(
        std::string(), std::string("hello"), std::string("with\0nul", 8), std::vector<int>{},
        std::vector<int>{1, -2, 3}, std::vector<std::string>{"", "a", std::string(100, 'z')},
        std::vector<bool>{true, false, true, true}, std::vector<no_default>{no_default{1}},
        std::optional<int>{}, std::optional<int>{5}, std::optional<std::string>{"x"},
        std::pair<int, std::string>{3, "three"}, std::tuple<>{},
        std::tuple<int, std::string, double>{1, "b", 2.0}, std::array<std::string, 2>{"left", "right"},
        std::map<int, std::string>{{2, "b"}, {1, "a"}},
        std::unordered_map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 3}}, std::set<std::string>{"x", "y"},
        std::unordered_set<int>{4, 5, 6}, std::map<int, int>{});
  }

  TEST_CASE("variants round trip whichever alternative they hold") {
    check_round_trips(mixed_variant{7}, mixed_variant{std::string("seven")},
                      mixed_variant{std::vector{0.5, 7.0}}, std::variant<std::monostate, int>{},
                      std::variant<int, int>{std::in_place_index<1>, 9});
  }

  TEST_CASE("nested combinations round trip") {
    check_round_trips(
        sample_nested_map(), std::vector<mixed_variant>{1, std::string("s"), std::vector<double>{}},
        std::optional<std::vector<std::optional<int>>>{{1, std::nullopt, 3}},
        std::map<std::string, std::map<int, std::vector<std::string>>>{{"k", {{1, {"a", "b"}}}}},
        std::tuple<std::pair<int, std::set<int>>, std::optional<mixed_variant>>{{1, {2, 3}}, 4});
  }

  TEST_CASE("user types round trip through a member hook or an ADL hook") {
    check_round_trips(member_hooked{}, sample_member_hooked(), sample_polygon(),
                      std::vector<member_hooked>{sample_member_hooked(), {}},
                      std::map<std::string, geometry::polygon>{{"p", sample_polygon()}},
                      with_arrays{{'a', 'b', 'c', 'd'}, {"one", "two"}, sample_member_hooked()},
                      tree{1, {tree{2, {}}, tree{3, {tree{4, {}}}}}});
  }

  TEST_CASE("encode_all and decode_all carry several values in order") {
    std::string bytes = coring::encode_all(1, std::string("two"), std::vector<double>{3.0}, sample_polygon());
    auto [one, two, three, four] =
        coring::decode_all<int, std::string, std::vector<double>, geometry::polygon>(bytes);
    CHECK(one == 1);
    CHECK(two == "two");
    CHECK(three == std::vector<double>{3.0});
    CHECK(four == sample_polygon());
    CHECK(coring::encode_all().empty());
    CHECK(coring::decode_all<>("") == std::tuple<>{});
  }

  TEST_CASE("encode and decode stream values through a writer and a reader") {
    coring::byte_writer out;
    coring::encode(out, 5);
    coring::encode(out, std::string("abc"));
    out.write_bytes("\x01\x02", 2);
    CHECK(out.size() == 4 + 8 + 3 + 2);
    CHECK(out.view().size() == out.size());

    std::string bytes = out.take();
    CHECK(out.size() == 0);
    CHECK(bytes.size() == 17);

    coring::byte_reader in(bytes);
    CHECK(coring::decode<int>(in) == 5);
    CHECK(coring::decode<std::string>(in) == "abc");
    CHECK(in.remaining() == 2);
    CHECK_FALSE(in.done());
    char tail[2];
    in.read_bytes(tail, 2);
    CHECK(tail[1] == '\x02');
    CHECK(in.done());
    CHECK_THROWS_AS(in.read_bytes(tail, 1), coring::decode_error);

    coring::byte_reader raw(bytes.data() + 4, 11);
    CHECK(coring::decode<std::string>(raw) == "abc");
    CHECK(raw.done());
  }

  TEST_CASE("a writer reused after clear or take starts empty") {
    coring::byte_writer out;
    coring::encode(out, std::string(100, 'a'));
    out.clear();
    coring::encode(out, std::uint16_t{7});
    CHECK(out.view() == std::string_view("\x07\x00", 2));
    CHECK(out.take() == std::string("\x07\x00", 2));
    coring::encode(out, std::uint8_t{9});
    CHECK(out.take() == "\x09");
  }

  TEST_CASE("the wire format is native bytes with u64 little-endian lengths") {
    struct row {
      std::string_view name;
      std::string encoded;
      std::string expected;
    };
    using namespace std::string_literals;
    const row rows[] = {
        {"uint32", coring::encode_all(std::uint32_t{0x01020304}), "\x04\x03\x02\x01"s},
        {"bool", coring::encode_all(true, false), "\x01\x00"s},
        {"string", coring::encode_all(std::string("ab")), u64_bytes(2) + "ab"},
        {"empty vector", coring::encode_all(std::vector<int>{}), u64_bytes(0)},
        {"vector<uint16_t>", coring::encode_all(std::vector<std::uint16_t>{1, 2}),
         u64_bytes(2) + "\x01\x00\x02\x00"s},
        {"vector<bool>", coring::encode_all(std::vector<bool>{true, false}), u64_bytes(2) + "\x01\x00"s},
        {"empty optional", coring::encode_all(std::optional<int>{}), "\x00"s},
        {"optional<uint8_t>", coring::encode_all(std::optional<std::uint8_t>{9}), "\x01\x09"s},
        {"pair", coring::encode_all(std::pair<std::uint8_t, bool>{5, true}), "\x05\x01"s},
        {"variant", coring::encode_all(std::variant<int, std::uint8_t>{std::uint8_t{7}}), "\x01\x07"s},
        {"monostate", coring::encode_all(std::monostate{}), ""s},
        {"map", coring::encode_all(std::map<std::uint8_t, bool>{{2, false}, {1, true}}),
         u64_bytes(2) + "\x01\x01\x02\x00"s},
        {"enum", coring::encode_all(colour::green), "\x02"s},
    };
    for (const row& r : rows) {
      CAPTURE(r.name);
      CHECK(r.encoded == r.expected);
    }
  }

  TEST_CASE("an 8 MiB string and an 8 MiB vector<int> round trip") {
    std::string big(8u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131);
    std::vector<int> ints((8u << 20) / sizeof(int));
    for (std::size_t i = 0; i < ints.size(); ++i) ints[i] = static_cast<int>(i * 2654435761u);

    std::string bytes = coring::encode_all(big, ints);
    CHECK(bytes.size() == 8 + big.size() + 8 + ints.size() * sizeof(int));
    auto [big_back, ints_back] = coring::decode_all<std::string, std::vector<int>>(bytes);
    CHECK(big_back == big);
    CHECK(ints_back == ints);
  }

  TEST_CASE("every truncated prefix of an encoding throws decode_error without reading out of bounds") {
    check_every_prefix_throws(std::int64_t{-1});
    check_every_prefix_throws(std::string("hello"));
    check_every_prefix_throws(std::vector<int>{1, 2, 3});
    check_every_prefix_throws(std::vector<bool>{true, false});
    check_every_prefix_throws(std::optional<std::string>{"x"});
    check_every_prefix_throws(std::array<std::string, 2>{"a", "b"});
    check_every_prefix_throws(sample_nested_map());
    check_every_prefix_throws(mixed_variant{std::vector<double>{1.0, 2.0}});
    check_every_prefix_throws(std::unordered_map<int, std::set<std::string>>{{1, {"a", "bc"}}, {2, {}}});
    check_every_prefix_throws(sample_member_hooked());
    check_every_prefix_throws(sample_polygon());
    check_every_prefix_throws(with_arrays{{'a', 'b', 'c', 'd'}, {"one", "two"}, sample_member_hooked()});
    check_every_prefix_throws(std::tuple<int, std::string, no_default>{1, "s", no_default{2}});
  }

  TEST_CASE("decode_error names what was being read and how many bytes were left") {
    struct row {
      std::string_view name;
      std::string message;
      std::string expected;
    };
    const std::string short_int("\x01\x02", 2);
    const row rows[] = {
        {"string length", decode_message([] {
           (void)coring::decode_all<std::string>(u64_bytes(1000) + std::string(12, 'x'));
         }),
         "decode: std::string length 1000 exceeds the 12 bytes left"},
        {"vector length", decode_message([] {
           (void)coring::decode_all<std::vector<int>>(u64_bytes(4) + std::string(12, 'x'));
         }),
         "decode: std::vector<int> length 4 exceeds the 12 bytes left (each element takes at least 4 bytes)"},
        {"short length", decode_message([] { (void)coring::decode_all<std::string>("abc"); }),
         "decode: std::string length needs 8 bytes but only 3 are left"},
        {"short int", decode_message([&] { (void)coring::decode_all<int>(short_int); }),
         "decode: int needs 4 bytes but only 2 are left"},
        {"bool", decode_message([] { (void)coring::decode_all<bool>("\x02"); }),
         "decode: bool 2 is neither 0 nor 1"},
        {"optional flag", decode_message([] { (void)coring::decode_all<std::optional<int>>("\x07"); }),
         "decode: std::optional<int> flag 7 is neither 0 nor 1"},
        {"variant index", decode_message([] { (void)coring::decode_all<mixed_variant>("\x03"); }),
         "decode: std::variant<int, std::string, std::vector<double>> index 3 is out of range (3 "
         "alternatives)"},
        {"left over", decode_message([] { (void)coring::decode_all<std::uint8_t>("abc"); }),
         "decode: 2 bytes left over after the last value"},
    };
    for (const row& r : rows) {
      CAPTURE(r.name);
      CHECK(r.message == r.expected);
    }
  }

  TEST_CASE("a hostile length throws decode_error before anything is allocated") {
    using counted_ints = std::vector<int, counting_allocator<int>>;
    using counted_strings = std::vector<std::string, counting_allocator<std::string>>;
    using counted_map = std::map<int, int, std::less<>, counting_allocator<std::pair<const int, int>>>;
    using counted_bools = std::vector<bool, counting_allocator<bool>>;
    for (std::uint64_t length :
         {std::uint64_t{1} << 62, ~std::uint64_t{0}, std::uint64_t{1} << 32, std::uint64_t{17}}) {
      CAPTURE(length);
      std::string bytes = u64_bytes(length) + std::string(16, '\x01');
      allocations = 0;
      CHECK_THROWS_AS(decode_exact<counted_ints>(bytes), coring::decode_error);
      CHECK_THROWS_AS(decode_exact<counted_strings>(bytes), coring::decode_error);
      CHECK_THROWS_AS(decode_exact<counted_map>(bytes), coring::decode_error);
      CHECK_THROWS_AS(decode_exact<counted_bools>(bytes), coring::decode_error);
      CHECK(allocations == 0);
      // Without a counting allocator, AddressSanitizer would abort on a huge allocation.
      CHECK_THROWS_AS(decode_exact<std::string>(bytes), coring::decode_error);
      CHECK_THROWS_AS(decode_exact<std::vector<std::vector<double>>>(bytes), coring::decode_error);
      CHECK_THROWS_AS((decode_exact<std::unordered_map<int, int>>(bytes)), coring::decode_error);
      CHECK_THROWS_AS(decode_exact<std::vector<member_hooked>>(bytes), coring::decode_error);
    }
  }

  TEST_CASE("decode_all throws when bytes are left over or missing") {
    std::string bytes = coring::encode_all(1, 2);
    CHECK_THROWS_AS((void)coring::decode_all<int>(bytes), coring::decode_error);
    CHECK_THROWS_AS((void)(coring::decode_all<int, int, int>(bytes)), coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<>(bytes), coring::decode_error);
    CHECK((coring::decode_all<int, int>(bytes) == std::tuple{1, 2}));
  }

  TEST_CASE("malformed flags, variant indexes and repeated keys throw decode_error") {
    using namespace std::string_literals;
    CHECK_THROWS_AS((void)coring::decode_all<mixed_variant>("\x03"s + u64_bytes(0)), coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<mixed_variant>("\xff"s), coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<std::variant<int>>("\x01\x00\x00\x00\x00"s),
                    coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<bool>("\x02"s), coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<std::optional<int>>("\x02\x00\x00\x00\x00"s),
                    coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<std::vector<bool>>(u64_bytes(1) + "\x05"s),
                    coring::decode_error);
    CHECK_THROWS_AS(
        (void)(coring::decode_all<std::map<std::uint8_t, std::uint8_t>>(u64_bytes(2) + "\x01\x01\x01\x02"s)),
        coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<std::set<std::uint8_t>>(u64_bytes(2) + "\x04\x04"s),
                    coring::decode_error);
    CHECK_THROWS_AS((void)coring::decode_all<std::unordered_set<std::uint8_t>>(u64_bytes(2) + "\x04\x04"s),
                    coring::decode_error);
  }

  TEST_CASE("decode_error is a coring::error") {
    CHECK_THROWS_AS((void)coring::decode_all<int>(""), coring::error);
  }

  TEST_CASE("encoding a valueless variant throws coring::error") {
    std::variant<int, throws_on_copy> v;
    throws_on_copy source;
    CHECK_THROWS_AS(v.emplace<1>(source), std::runtime_error);
    REQUIRE(v.valueless_by_exception());
    coring::byte_writer out;
    CHECK_THROWS_AS(coring::encode(out, v), coring::error);
  }
}
