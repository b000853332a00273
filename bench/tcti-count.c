/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libtss2-tcti-count.so.0: a TCTI that forwards every call to the real TCTI and counts the
 * commands that go through it. Benchmark instrumentation only; never part of keystrap.
 *
 *   KEYSTRAP_TCTI=count TCTI_COUNT_INNER=swtpm:port=2321 TCTI_COUNT_LOG=/tmp/n keystrap ...
 *
 * The real TCTI is the config string after "count:" if there is one, else TCTI_COUNT_INNER,
 * else the tctildr default. At finalize one line "tpm-commands N: CreatePrimary Load ..." is
 * appended to the file TCTI_COUNT_LOG (one write(2), so processes that share the file, like
 * the tpm2-tools a clevis unlock forks, never interleave) or written to stderr.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>

#define COUNT_MAGIC 0x6b657973636e7431ULL
#define CODES_MAX 1024
#define NAME_MAX_LEN 32

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void);

struct count_ctx {
	TSS2_TCTI_CONTEXT_COMMON_V2 common;
	TSS2_TCTI_CONTEXT *inner;
	size_t count;
	TPM2_CC codes[CODES_MAX];
};

#define CC(n) { TPM2_CC_##n, #n }
static const struct {
	TPM2_CC code;
	const char *name;
} cc_names[] = {
	CC(NV_UndefineSpaceSpecial), CC(EvictControl), CC(HierarchyControl), CC(NV_UndefineSpace),
	CC(ChangeEPS), CC(ChangePPS), CC(Clear), CC(ClearControl),
	CC(ClockSet), CC(HierarchyChangeAuth), CC(NV_DefineSpace), CC(PCR_Allocate),
	CC(PCR_SetAuthPolicy), CC(PP_Commands), CC(SetPrimaryPolicy), CC(FieldUpgradeStart),
	CC(ClockRateAdjust), CC(CreatePrimary), CC(NV_GlobalWriteLock), CC(GetCommandAuditDigest),
	CC(NV_Increment), CC(NV_SetBits), CC(NV_Extend), CC(NV_Write),
	CC(NV_WriteLock), CC(DictionaryAttackLockReset), CC(DictionaryAttackParameters), CC(NV_ChangeAuth),
	CC(PCR_Event), CC(PCR_Reset), CC(SequenceComplete), CC(SetAlgorithmSet),
	CC(SetCommandCodeAuditStatus), CC(FieldUpgradeData), CC(IncrementalSelfTest), CC(SelfTest),
	CC(Startup), CC(Shutdown), CC(StirRandom), CC(ActivateCredential),
	CC(Certify), CC(PolicyNV), CC(CertifyCreation), CC(Duplicate),
	CC(GetTime), CC(GetSessionAuditDigest), CC(NV_Read), CC(NV_ReadLock),
	CC(ObjectChangeAuth), CC(PolicySecret), CC(Rewrap), CC(Create),
	CC(ECDH_ZGen), CC(HMAC), CC(Import), CC(Load),
	CC(Quote), CC(RSA_Decrypt), CC(HMAC_Start), CC(SequenceUpdate),
	CC(Sign), CC(Unseal), CC(PolicySigned), CC(ContextLoad),
	CC(ContextSave), CC(ECDH_KeyGen), CC(EncryptDecrypt), CC(FlushContext),
	CC(LoadExternal), CC(MakeCredential), CC(NV_ReadPublic), CC(PolicyAuthorize),
	CC(PolicyAuthValue), CC(PolicyCommandCode), CC(PolicyCounterTimer), CC(PolicyCpHash),
	CC(PolicyLocality), CC(PolicyNameHash), CC(PolicyOR), CC(PolicyTicket),
	CC(ReadPublic), CC(RSA_Encrypt), CC(StartAuthSession), CC(VerifySignature),
	CC(ECC_Parameters), CC(FirmwareRead), CC(GetCapability), CC(GetRandom),
	CC(GetTestResult), CC(Hash), CC(PCR_Read), CC(PolicyPCR),
	CC(PolicyRestart), CC(ReadClock), CC(PCR_Extend), CC(PCR_SetAuthValue),
	CC(NV_Certify), CC(EventSequenceComplete), CC(HashSequenceStart), CC(PolicyPhysicalPresence),
	CC(PolicyDuplicationSelect), CC(PolicyGetDigest), CC(TestParms), CC(Commit),
	CC(PolicyPassword), CC(ZGen_2Phase), CC(EC_Ephemeral), CC(PolicyNvWritten),
	CC(PolicyTemplate), CC(CreateLoaded), CC(PolicyAuthorizeNV), CC(EncryptDecrypt2),
	CC(AC_GetCapability), CC(AC_Send), CC(Policy_AC_SendSelect), CC(CertifyX509),
	CC(ACT_SetTimeout),
};
#undef CC

static struct count_ctx *count_ctx(TSS2_TCTI_CONTEXT *ctx)
{
	struct count_ctx *c = (struct count_ctx *)ctx;

	return c && c->common.v1.magic == COUNT_MAGIC ? c : NULL;
}

static int append_name(char *buf, size_t size, size_t *off, TPM2_CC code)
{
	int n = -1;

	for (size_t i = 0; i < sizeof(cc_names) / sizeof(cc_names[0]); i++)
		if (cc_names[i].code == code) {
			n = snprintf(buf + *off, size - *off, " %s", cc_names[i].name);
			break;
		}
	if (n < 0)
		n = snprintf(buf + *off, size - *off, " 0x%08x", code);
	if (n < 0 || (size_t)n >= size - *off)
		return -1;
	*off += (size_t)n;
	return 0;
}

static void report(const struct count_ctx *c)
{
	const char *path = secure_getenv("TCTI_COUNT_LOG");
	size_t size = 64 + CODES_MAX * (NAME_MAX_LEN + 1), off = 0, logged;
	char *line = malloc(size);
	int fd = STDERR_FILENO;

	if (!line)
		return;
	off = (size_t)snprintf(line, size, "tpm-commands %zu:", c->count);
	logged = c->count < CODES_MAX ? c->count : CODES_MAX;
	for (size_t i = 0; i < logged; i++)
		if (append_name(line, size, &off, c->codes[i]) < 0)
			break;
	line[off++] = '\n';
	if (path && *path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			fd = STDERR_FILENO;
	}
	if (write(fd, line, off) < 0)
		perror("tcti-count: write");
	if (fd != STDERR_FILENO)
		close(fd);
	free(line);
}

static TSS2_RC count_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *command)
{
	struct count_ctx *c = count_ctx(ctx);

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	/* TPM command header: tag(2) size(4) commandCode(4), big-endian. */
	if (size >= 10 && c->count < CODES_MAX)
		c->codes[c->count] = (TPM2_CC)command[6] << 24 | (TPM2_CC)command[7] << 16 |
				     (TPM2_CC)command[8] << 8 | command[9];
	c->count++;
	return Tss2_Tcti_Transmit(c->inner, size, command);
}

static TSS2_RC count_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *response, int32_t timeout)
{
	struct count_ctx *c = count_ctx(ctx);

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	return Tss2_Tcti_Receive(c->inner, size, response, timeout);
}

static void count_finalize(TSS2_TCTI_CONTEXT *ctx)
{
	struct count_ctx *c = count_ctx(ctx);

	if (!c)
		return;
	report(c);
	Tss2_TctiLdr_Finalize(&c->inner);
	c->common.v1.magic = 0;
}

static TSS2_RC count_cancel(TSS2_TCTI_CONTEXT *ctx)
{
	struct count_ctx *c = count_ctx(ctx);

	return c ? Tss2_Tcti_Cancel(c->inner) : TSS2_TCTI_RC_BAD_CONTEXT;
}

static TSS2_RC count_get_poll_handles(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *handles,
				      size_t *num)
{
	struct count_ctx *c = count_ctx(ctx);

	return c ? Tss2_Tcti_GetPollHandles(c->inner, handles, num) : TSS2_TCTI_RC_BAD_CONTEXT;
}

static TSS2_RC count_set_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality)
{
	struct count_ctx *c = count_ctx(ctx);

	return c ? Tss2_Tcti_SetLocality(c->inner, locality) : TSS2_TCTI_RC_BAD_CONTEXT;
}

static TSS2_RC count_make_sticky(TSS2_TCTI_CONTEXT *ctx, TPM2_HANDLE *handle, uint8_t sticky)
{
	struct count_ctx *c = count_ctx(ctx);

	return c ? Tss2_Tcti_MakeSticky(c->inner, handle, sticky) : TSS2_TCTI_RC_BAD_CONTEXT;
}

static TSS2_RC count_init(TSS2_TCTI_CONTEXT *ctx, size_t *size, const char *conf)
{
	struct count_ctx *c = (struct count_ctx *)ctx;
	TSS2_RC rc;

	if (!size)
		return TSS2_TCTI_RC_BAD_VALUE;
	if (!ctx) {
		*size = sizeof(*c);
		return TSS2_RC_SUCCESS;
	}
	if (*size < sizeof(*c))
		return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
	if (!conf || !*conf)
		conf = secure_getenv("TCTI_COUNT_INNER");
	if (conf && !*conf)
		conf = NULL;
	/* Refuse to wrap ourselves: "count" as the inner TCTI would recurse until the stack ends. */
	if (conf && (strcmp(conf, "count") == 0 || strncmp(conf, "count:", 6) == 0))
		return TSS2_TCTI_RC_BAD_VALUE;

	memset(c, 0, sizeof(*c));
	rc = Tss2_TctiLdr_Initialize(conf, &c->inner);
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	c->common.v1.magic = COUNT_MAGIC;
	c->common.v1.version = 2;
	c->common.v1.transmit = count_transmit;
	c->common.v1.receive = count_receive;
	c->common.v1.finalize = count_finalize;
	c->common.v1.cancel = count_cancel;
	c->common.v1.getPollHandles = count_get_poll_handles;
	c->common.v1.setLocality = count_set_locality;
	c->common.makeSticky = count_make_sticky;
	return TSS2_RC_SUCCESS;
}

static const TSS2_TCTI_INFO count_info = {
	.version = 2,
	.name = "count",
	.description = "Counts TPM commands and forwards them to another TCTI",
	.config_help = "The inner TCTI config (name:conf); default $TCTI_COUNT_INNER",
	.init = count_init,
};

__attribute__((visibility("default"))) const TSS2_TCTI_INFO *Tss2_Tcti_Info(void)
{
	return &count_info;
}
