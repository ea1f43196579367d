#pragma once
// The whole of coring::net in one include, for applications and examples.
// coring's own headers never include this; include what you use there.

#include <coring/net/address.hpp>
#include <coring/net/buffered_reader.hpp>
#include <coring/net/buffered_writer.hpp>
#include <coring/net/byte_stream.hpp>
#include <coring/net/error.hpp>
#include <coring/net/lent_buffer.hpp>
#include <coring/net/listener.hpp>
#include <coring/net/resolve.hpp>
#include <coring/net/send_file.hpp>
#include <coring/net/socket_stream.hpp>
#include <coring/net/tcp.hpp>
#include <coring/net/tls.hpp>
#include <coring/net/unix.hpp>
