/* The scrubber against every spelling the adversarial review found, and
 * near misses that must stay. Output is folded text (lower case, NFKC,
 * simplified Chinese) with placeholders. */
#include "fold.h"
#include "kt.h"
#include "scrub.h"

static const char *scrub(const char *q)
{
	static char out[KN_SCRUB_MAX];

	kn_scrub_query(q, strlen(q), out, NULL);
	return out;
}

/* Each input must come out exactly as want. */
static void expect(const char *const (*cases)[2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *got = scrub(cases[i][0]);
		KT_CHECK(!strcmp(got, cases[i][1]));
		if (strcmp(got, cases[i][1]))
			fprintf(stderr, "  '%s' -> '%s', want '%s'\n", cases[i][0], got,
				cases[i][1]);
	}
}

#define EXPECT(c) expect(c, sizeof(c) / sizeof(c[0]))

static void test_emails(void)
{
	static const char *const c[][2] = {
		{"contact zhang.wei@qq.com please", "contact <EMAIL> please"},
		{"邮箱 li_na+x@mail.example.cn 谢谢", "邮箱 <EMAIL> 谢谢"},
		{"x at example dot com", "<EMAIL>"},
		{"write to x at example.com now", "write to <EMAIL> now"},
		{"x[at]qq.com", "<EMAIL>"},
		{"x(at)qq(dot)com", "<EMAIL>"},
		{"zhangsan【at】qq【dot】com", "<EMAIL>"},
		{"zhangsan(艾特)qq.com", "<EMAIL>"},
		{"如图(a)中点p的坐标", "如图(a)中点p的坐标"}, /* (a) is no "@" */
		{"john dot smith at gmail", "<EMAIL>"},	      /* the whole local part */
		{"john(dot)smith(at)gmail(dot)com", "<EMAIL>"},
		{"node dot js tutorial", "node dot js tutorial"},
		{"x @ example.com", "<EMAIL>"},
		{"x＠qq．com", "<EMAIL>"}, /* full-width */
		{"zhang艾特qq点com", "<EMAIL>"},
		{"mail x@例子.中国 ok", "mail <EMAIL> ok"}, /* IDN domain */
		{"x#163.com", "<EMAIL>"},
		{"zhangsan_at_gmail_dot_com 谢谢", "<EMAIL> 谢谢"},
		{"zhangsan圈qq.com", "<EMAIL>"},
		{"朋友圈 设置", "朋友圈 设置"}, /* 圈 without an address after it */
		{"朋友圈qq空间怎么同步", "朋友圈qq空间怎么同步"}, /* nor after a CJK word */
		{"娱乐圈163", "娱乐圈163"},
		{"my_var_at_home", "my_var_at_home"},
		{"张三@qq.com", "<EMAIL>"}, /* a non-ASCII local part (RFC 6531) */
		{"发给 王小明@163.com 谢谢", "发给 <EMAIL> 谢谢"},
		{"zhang艾特qq.com", "<EMAIL>"},
		/* Names with vowel signs, diacritics and middle dots. */
		{"राजेश@gmail.com", "<EMAIL>"},
		{"สมศักดิ์@gmail.com", "<EMAIL>"},
		{"阿依古丽·买买提@qq.com", "<EMAIL>"},
		{"john@उदाहरण.भारत", "<EMAIL>"},
		/* Letters only, 64 bytes at most: punctuation ends the local part. */
		{"北京天气怎么样。联系我zhang@qq.com", "北京天气怎么样。<EMAIL>"},
		{"《三体》作者的邮箱liu@qq.com", "《三体》<EMAIL>"},
		/* Escaped as logs and URLs escape them. */
		{"q=zhangsan%40qq.com", "q=<EMAIL>"},
		{"zhangsan&#64;qq.com", "<EMAIL>"},
		{"zhangsan&commat;qq&period;com", "<EMAIL>"},
		{"zhangsan[@]qq.com", "<EMAIL>"},
		/* A provider without its TLD, as people write it. */
		{"加我 zhangsan@qq 谢谢", "加我 <EMAIL> 谢谢"},
		{"wang.fang@163", "<EMAIL>"},
		/* An ASCII local part beyond RFC 5321's 64 bytes is still one. */
		{"a.very.long.local.part.that.goes.on.and.on.for.more.than.64.bytes.here@example."
		 "com",
		 "<EMAIL>"},
		/* Near misses. */
		{"user@localhost", "user@localhost"}, /* no dot-TLD: not an address */
		{"name@qqmail", "name@qqmail"},	      /* not a provider's name */
		{"@weibo handle", "@weibo handle"},
		{"c# tutorial", "c# tutorial"},
	};
	EXPECT(c);
}

static void test_urls(void)
{
	static const char *const c[][2] = {
		{"see https://shop.example.com/item?id=42&uid=77 now", "see <URL> now"},
		{"www.example.com/a?b=c", "<URL>"},
		{"https://example.com/about", "<URL>"},
		{"https://user:secret@host.example.com/x", "<URL>"},
		/* what a browser opens too (the WHATWG URL Standard) */
		{"see http:\\\\zhangsan-blog.com\\x now", "see <URL> now"},
		{"see HTTP:/zhangsan-blog.com now", "see <URL> now"},
		{"https:zhangsan-blog.com", "<URL>"},
		{"file:\\\\C:\\Users\\zhangsan", "<URL>"},
		{"http: the protocol", "http: the protocol"},
		/* a bare host: a label before its registered name may be a person */
		{"my blog zhangsan.github.io", "my blog <URL>"},
		{"zhangsan.github.io at home", "<URL> at home"},
		{"zhangsan[.]github[.]io", "<URL>"}, /* dots as a browser would not read them */
		{"zhangsan。github。io 主页", "<URL> 主页"},
		{"zhang.san.github.io at github.com", "<EMAIL>"},
		{"zhangsan1990.lofter.com 的照片", "<URL> 的照片"},
		{"li-na.netlify.app, new", "<URL>, new"},
		{"taobao.com", "taobao.com"},
		{"github.io pages", "github.io pages"},
		{"m.taobao.com", "m.taobao.com"},
		{"baike.baidu.com 词条", "baike.baidu.com 词条"},
		{"zhangsan.blog.sina.com.cn", "<URL>"},
		{"jquery.min.js", "jquery.min.js"},
		{"zhang.san@example.com", "<EMAIL>"},
		/* a user's name as a directory */
		{"ls /home/zhangsan/.ssh", "ls /home/<ID>/.ssh"},
		{"C:\\Users\\张三\\Desktop\\a.txt", "c:\\users\\<ID>\\desktop\\a.txt"},
		{"/Users/li.na", "/users/<ID>"},
		{"C:\\Users\\Public\\x", "c:\\users\\public\\x"},
		{"C:\\Users\\Zhang San\\Desktop", "c:\\users\\<ID>\\desktop"},
		{"/home/li na wei/x", "/home/<ID>/x"},
		{"c:\\users\\zhangsan is me", "c:\\users\\<ID> is me"},
		{"C:\\Documents and Settings\\All Users\\x",
		 "c:\\documents and settings\\all users\\x"},
		{"my home/ and users/ ", "my home/ and users/ "},
		{"cat /var/mail/zhangsan", "cat /var/mail/<ID>"},
		{"/var/spool/mail/li.na ok", "/var/spool/mail/<ID> ok"},
		{"my mail/zhangsan", "my mail/zhangsan"},
		{"~zhangsan/public_html", "~<ID>/public_html"},
		{"scp host:~li-na/a.txt .", "scp host:~<ID>/a.txt ."},
		{"~ten people/day", "~ten people/day"},
		{"about ~5km/h", "about ~5km/h"},
		{"cd ~/docs", "cd ~/docs"},
		{"a~zhangsan/x", "a~zhangsan/x"},
		/* escaped, shared, numbered and localized homes */
		{"'C:\\\\Users\\\\liwei\\\\AppData'", "'c:\\\\users\\\\<ID>\\\\appdata'"},
		{"\\\\fs01\\home$\\zhangsan", "\\\\fs01\\home$\\<ID>"},
		{"\\\\fs01\\profiles$\\zhangsan.v6", "\\\\fs01\\profiles$\\<ID>"},
		{"\\\\nas\\homes\\liuyang\\photos", "\\\\nas\\homes\\<ID>\\photos"},
		{"/home2/liming/public_html", "/home2/<ID>/public_html"},
		{"C:\\用户\\张伟\\桌面", "c:\\用户\\<ID>\\桌面"},
		{"此电脑 > 本地磁盘 (C:) > 用户 > 张三 > 桌面",
		 "此电脑 > 本地磁盘 (c:) > 用户 > <ID> > 桌面"},
		{"/run/media/liwei/KINGSTON", "/run/media/<ID>/kingston"},
		{"用户/角色/权限 设计", "用户/角色/权限 设计"}, /* 用户 only on a drive */
		{"home > electronics > phones", "home > electronics > phones"},
		{"c:\\用户\\公用\\桌面", "c:\\用户\\公用\\桌面"},
		{"firefox profiles/default-release", "firefox profiles/default-release"},
		{"new homes/condos", "new homes/condos"},
		{"homes/for_sale", "homes/for_sale"},
		{"cat /var/mail/root", "cat /var/mail/root"},
		{"/home/<user>/.ssh", "/home/<ID>/.ssh"},
		{"word/media/image1.png", "word/media/image1.png"},
		{"warehouse/x", "warehouse/x"},
		{"example.com/login?user=zhangsan", "<URL>"},
		{"去 例子.中国/path?x=1 看", "去 <URL> 看"},
		{"jd.com:8080", "<URL>"},
		/* A bare domain names a shop, not a person. */
		{"taobao.com 优惠", "taobao.com 优惠"},
		{"version 1.2/3", "version 1.2/3"},
	};
	EXPECT(c);
}

static void test_ip(void)
{
	static const char *const c[][2] = {
		{"my ip 203.0.113.77.", "my ip <IP>."},
		{"v6 2001:db8::8a2e:370:7334 ok", "v6 <IP> ok"},
		{"192.168.1.10:8080", "<IP>"},
		{"ip:10.0.0.1", "ip:<IP>"},
		{"IP：10.0.0.1", "ip:<IP>"},
		{"[2001:db8::1]:443", "<IP>"},
		{"version 1.2.3.4.5", "version 1.2.3.4.5"}, /* not an address */
		{"999.1.1.1", "999.1.1.1"},
		{"ip10.0.0.1", "ip<IP>"},
		{"srv10.1.2.3:22", "srv<IP>"},
	};
	EXPECT(c);
}

static void test_device_ids(void)
{
	static const char *const c[][2] = {
		{"idfa E621E1F8-C36C-495A-93FC-0C247A3E6E5F ok", "idfa <ID> ok"},
		{"mac 00:1a:2b:3c:4d:5e", "mac <ID>"},
		{"mac 00-1A-2B-3C-4D-5E.", "mac <ID>."},
		{"android id 9774d56d682e549c", "android id <ID>"},
		{"md5 5d41402abc4b2a76b9719d911017c592", "md5 <ID>"},
		{"mac 001a.2b3c.4d5e", "mac <ID>"},	/* Cisco's notation */
		{"mac 001A2B3C4D5E ok", "mac <ID> ok"}, /* bare, 12 hex */
		{"token 0x1a2b3c4d5e6f7a8b", "token <ID>"},
		{"4795111744325685 0xce6e324ce2dd", "<CARD> <ID>"}, /* the 0 is not the card's */
		/* Near misses: words of hex letters, short hex, mixed separators. */
		{"a cafe face", "a cafe face"},
		{"color ff00aa", "color ff00aa"},
		{"deadbeefcafe 0xdeadbeef", "deadbeefcafe 0xdeadbeef"}, /* no digits, short */
		{"rtx4090 vs rtx3080ti 1080p", "rtx4090 vs rtx3080ti 1080p"},
		{"00:1a:2b-3c:4d:5e", "00:1a:2b-3c:4d:5e"},
		{"eui 00-1a-2b-ff-fe-3c-4d-5e", "eui <ID>"}, /* EUI-64: eight pairs */
		/* Pairs of decimal digits are a number: never cut into an <ID>. */
		{"11-01-05-19-87-02-26-02-53", "<CN_ID>"},
		{"62-22-02-12-34-56-78-90-12", "<CARD>"},
		/* A number glued to a replaced identifier is a number of its
		 * own, grouped or not (found by fuzz_text and its review). */
		{"5f2a9c81-d07b-4e1a-9c3e-1a2b3c4d5e6f13800-138000", "<ID><PHONE>"},
		{"5f2a9c81-d07b-4e1a-9c3e-1a2b3c4d5e6f13800 138000", "<ID><PHONE>"},
		{"idfa5f2a9c81-d07b-4e1a-9c3e-1a2b3c4d5e6f13800.138000", "idfa<ID><PHONE>"},
		{"id:5f2a9c81-d07b-4e1a-9c3e-1a2b3c4d5e6f1380013-8000", "id:<ID><PHONE>"},
		{"00000000-0000-0000-0000-00000000138000000138000000", "<ID><NUM>"},
		{"5f2a9c81-d07b-4e1a-9c3e-1a2b3c4d5e6f2024-01-01", "<ID>2024-01-01"},
	};
	EXPECT(c);
}

static void test_labeled(void)
{
	static const char *const c[][2] = {
		{"QQ 12345", "qq <NUM>"},
		{"qq号：123456", "qq号:<NUM>"},
		{"uid=123456", "uid=<NUM>"},
		{"加我微信 zs_1990", "加我微信 <ID>"},
		{"微信号：zhangsanfeng", "微信号:<ID>"}, /* after a colon: any handle */
		{"vx zhang-san", "vx <ID>"},
		{"加我微信 zs_1990.", "加我微信 <ID>."},
		{"wx: zhangsan@qq.com", "wx: <EMAIL>"}, /* the address is the address */
		{"抖音号 dy_12345678", "抖音号 <ID>"},
		{"手机号 138 1234 5678", "手机号 <PHONE>"}, /* long: typed as ever */
		/* Near misses: no label, short or long numbers, plain words. */
		{"qq 2023", "qq 2023"},
		{"iphone 12345", "iphone 12345"},
		{"wechat download", "wechat download"},
		{"微信 zhangsanfeng", "微信 zhangsanfeng"},
		{"qq音乐 下载", "qq音乐 下载"},
		/* the fourth review: user names, logins, passwords, "@" after a label */
		{"用户名:zhangsan_1990", "用户名:<ID>"},
		{"用户名是zhangsan1990", "用户名是<ID>"},
		{"昵称 zhangsan_1990", "昵称 <ID>"},
		{"user: zhangsan_1990", "user: <ID>"},
		{"login: zhangsan", "login: <ID>"},
		{"ID：zhangsan1990", "id:<ID>"},
		{"my id: zhangsan_1990", "my id: <ID>"},
		{"my id is zhangsan_1990", "my id is <ID>"},
		{"口令是123456", "口令是<ID>"},
		{"html id main_content", "html id main_content"}, /* "id" needs a colon */
		{"<div id=container>", "<div id=container>"},	  /* and a digit or '_' */
		{"id: number", "id: number"},
		{"tg bot_api", "tg bot_api"},
		{"qq id: 123456", "qq id: <NUM>"}, /* QQ's, not a handle's */
		{"?username=zhangsan&password=hunter2", "?username=<ID>&password=<ID>"},
		{"user=zhangsan&pass=123456", "user=<ID>&pass=<ID>"},
		{"口令: 123456", "口令: <ID>"}, /* 淘口令 2024 is a share code's */
		{"pwd=123", "pwd=<ID>"},
		{"twitter: @zhangsan", "twitter: <ID>"},
		{"加微 zhangsan_88", "加微 <ID>"},
		{"pass 2024", "pass 2024"}, /* "pass" labels only before ':' or '=' */
		{"boarding pass 2024", "boarding pass 2024"},
		{"twitter @zhangsan", "twitter @zhangsan"}, /* letters only, no colon */
		{"user guide", "user guide"},
		/* user, login, account, 用户 label a handle only before ':' or '=' */
		{"user sign-up flow", "user sign-up flow"},
		{"login office365", "login office365"},
		{"用户 iphone15 体验", "用户 iphone15 体验"},
		{"pass: true", "pass: true"},
		{"淘口令 2024年最新", "淘口令 2024年最新"},
		{"apple id 忘记了", "apple id 忘记了"},
	};
	EXPECT(c);
}

/* Spellings found by an adversarial review: separators that are letters,
 * digits in dress, labels with fillers, glued ids, secrets, plates,
 * passports, addresses, handles. */
static void test_review_spellings(void)
{
	static const char *const c[][2] = {
		{"138丨0013丨8000", "<PHONE>"},
		{"138丶0013丿8000", "<PHONE>"}, /* every filler of fold's squeeze */
		{"138点0013点8000", "<PHONE>"},
		{"010ㅡ1234ㅡ5678", "<NUM>"},
		{"138<br>0013<br>8000", "<PHONE>"},
		{"138😀😀😀😀😀0013😀😀😀😀😀8000", "<PHONE>"},
		{"❶❸❽⓿⓿❶❸❽⓿⓿⓿", "<PHONE>"},
		{"192点168点1点100", "<NUM>"},
		{"10[dot]20[dot]30[dot]40", "<NUM>"},
		{"QQ 20150612", "qq <NUM>"}, /* a date's shape, after a label */
		{"QQ123456", "qq<NUM>"},
		{"QQ号码：123456", "qq号码:<NUM>"},
		{"wechat id: zhangsan1990", "wechat id: <ID>"},
		{"微信号是 zhangsan_1990", "微信号是 <ID>"},
		{"有效期 12/25 安全码 123", "有效期 <NUM> 安全码 <NUM>"},
		{"密码 Zs@123456", "密码 <ID>"},
		{"出生日期 1987-07-03", "出生日期 <NUM>"},
		{"生日 1987年7月3日", "生日 <NUM>"},
		{"邮箱: .zhangsan@qq.com", "邮箱: <EMAIL>"},
		{"admin:pw0rd@192.168.1.1", "<EMAIL>"},
		{"mac001a2b3c4d5e", "mac<ID>"},
		{"idfaE621E1F8-C36C-495A-93FC-0C247A3E6E5F-ios", "idfa<ID>-ios"},
		{"token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "token <ID>"},
		{"京A12345 违章", "<ID> 违章"},
		{"粤B·D12345", "<ID>"},
		{"护照 E20150612", "护照 <ID>"},
		{"建国路88号院3号楼2单元1201室", "建国路<NUM>号院<NUM>号楼<NUM>单元<NUM>室"},
		{"3栋2单元501", "<NUM>栋<NUM>单元<NUM>"},
		{"朝阳区xx小区3-2-501", "朝阳区xx小区<NUM>"},
		{"5楼502怎么走", "5楼<NUM>怎么走"},
		{"大楼2024年竣工", "大楼2024年竣工"}, /* a year, not a room */
		{"张江路1388弄12号1203", "张江路<NUM>弄<NUM>号<NUM>"},
		{"宿舍 5号楼 412", "宿舍 <NUM>号楼 <NUM>"},
		{"公寓 B座 2305", "公寓 b座 <NUM>"},
		{"宿舍 12#楼 305", "宿舍 12#楼 <NUM>"},
		{"12月5号 1800", "12月5号 1800"}, /* a day's 号 */
		{"周六 5号 1900 演唱会", "周六 5号 1900 演唱会"},
		{"汉兰达 7座 2024款", "汉兰达 7座 2024款"},
		{"5号楼 2024 新生", "<NUM>号楼 2024 新生"},
		{"3号线 1203", "3号线 1203"},
		{"比分3-2-1", "比分3-2-1"},
		{"221B Baker Street London", "<NUM> baker street london"},
		{"deliver to 42 W 34th St.", "deliver to <NUM> w 34th st."},
		{"1600 Pennsylvania Ave NW", "<NUM> pennsylvania ave nw"},
		{"2 way street", "2 way street"}, /* the suffix first: no street */
		{"123 n. main st", "<NUM> n. main st"},
		{"32 gb usb flash drive", "32 gb usb flash drive"},
		{"30 minute drive from boston", "30 minute drive from boston"},
		{"4 wheel drive", "4 wheel drive"},
		{"公元1949", "公元1949"},
		{"大楼2024", "大楼2024"},
		{"电梯楼层1000", "电梯楼层1000"},
		{"top 10 best places", "top 10 best places"},
		{"follow @zs_1990.", "follow <ID>."},
		/* Near misses. */
		{"3点15分 开会", "3点15分 开会"},
		{"3号线 5号电池", "3号线 5号电池"},
		{"京东 618 活动", "京东 618 活动"},
		{"@weibo @2x", "@weibo @2x"},
		{"facebook download", "facebook download"},
		{"password reset 忘记密码", "password reset 忘记密码"},
		/* The second review's. */
		{"我的银行卡密码是123456", "我的银行卡密码是<ID>"},
		{"my password is summer2024!", "my password is <ID>"},
		{"my qq is 123456, pin 4821", "my qq is <NUM>, pin <ID>"},
		{"born on 19900512", "born on <NUM>"},
		{"出生于1990年5月12日", "出生于<NUM>"},
		{"contact me at first.last@company.com", "contact me at <EMAIL>"},
		{"key AKIAIOSFODNN7EXAMPLE", "key <ID>"},
		{"生日 2024年 计划", "生日 2024年 计划"},
		{"移动客服电话10086 手机 10000 毫安", "移动客服电话10086 手机 10000 毫安"},
		{"电话：20150612", "电话:<NUM>"},
		{"2室1厅 三年级第3单元", "2室1厅 三年级第3单元"},
		{"新rtx4090 显卡", "新rtx4090 显卡"},
		{"c# asp.net question #1.html", "c# asp.net question #1.html"},
		{"pwd: hunter", "pwd: <ID>"},
		/* The third review's. */
		{"13800一三八000", "<NUM>"}, /* digits and numerals, one number */
		{"138 零零一三 8000", "<NUM>"},
		{"110105一九八七〇二二六〇二五三", "<NUM>"},
		{"4111一1111一1111一1111", "<NUM>"},
		{"138x0013x8000", "<PHONE>"}, /* single letters between digit groups */
		{"4111x1111x1111x1111", "<CARD>"},
		{"\"zhang san\"@example.com", "<EMAIL>"}, /* a quoted local part */
		{"zhangsan@[IPv6:2001:db8::1] hi", "<EMAIL> hi"},
		{"example。com/u/zhangsan?id=1", "<URL>"}, /* IDNA's dots, defanged dots */
		{"example[.]com/login?user=zhangsan", "<URL>"},
		{"localhost:3000/user/zhangsan", "<URL>"},
		{"example.com#zhangsan", "<URL>"},
		{"git@github.com:zhangsan/repo.git x", "<EMAIL> x"},
		/* ...and their near misses */
		{"1920x1080 wallpaper", "1920x1080 wallpaper"},
		{"3d5s 2x4", "3d5s 2x4"},
		{"iphone 15 一二三", "iphone 15 一二三"},
		{"2026-11-29 12:30 航班", "2026-11-29 12:30 航班"},
		{"say \"hello\" to me", "say \"hello\" to me"},
		{"你好。com", "你好。com"},
		{"localhost", "localhost"},
		/* The fourth review's: what the third's changes must not do */
		{"my blog zhangsan.github.io/ check it", "my blog <URL> check it"},
		{"zhangsan.blogspot.com?", "<URL>"},
		{"600519一季度财报", "600519一季度财报"}, /* 一 alone is "one" */
		{"100000一个 2023一2024赛季", "100000一个 2023一2024赛季"},
		{"我住在上海。中国/日本哪个好", "我住在上海。中国/日本哪个好"},
		{"foo@[dot] abc@[all]", "foo@[dot] abc@[all]"},
		{"zs@qq.com:我想问一下", "<EMAIL>:我想问一下"},
		{"x@[192.0.2.1] y", "<EMAIL> y"},
		{"jose%E9%40gmail.com hi", "<EMAIL> hi"}, /* Latin-1 é: U+FFFD, still a name */
		{"%D5%C5%C8%FD%40qq.com", "<EMAIL>"},	  /* 张三@ escaped as GBK */
	};
	EXPECT(c);
}

static void test_cn_id(void)
{
	static const char *const c[][2] = {
		{"身份证11010519491231002X", "身份证<CN_ID>"},
		{"id 11010519491231002x", "id <CN_ID>"},
		{"110105 19870226 0253", "<CN_ID>"},
		{"110105-19870517-0165", "<CN_ID>"},
		{"11010519870703030x", "<CN_ID>"},
		{"１１０１０５１９８７０２２６０２５３", "<CN_ID>"}, /* full-width */
		/* A wrong check character is still a long number. */
		{"110105194912310021", "<NUM>"},
		{"11010519491231002Y", "<NUM>y"},
	};
	KT_CHECK(kn_cn_id_ok("11010519491231002X"));
	KT_CHECK(!kn_cn_id_ok("110105194912310021"));
	EXPECT(c);
}

static void test_cards(void)
{
	static const char *const c[][2] = {
		{"card 4111111111111111", "card <CARD>"},
		{"卡号 4111 1111 1111 1111 你好", "卡号 <CARD> 你好"},
		{"4111-1111-1111-1111", "<CARD>"},
		{"4111.1111.1111.1111", "<CARD>"},
		{"4111/1111/1111/1111", "<CARD>"},
		{"4111 1111 1111 1111 12/28 123", "<CARD>"}, /* expiry and CVV */
		{"4111111111111112", "<NUM>"},		     /* not Luhn: a number */
	};
	KT_CHECK(kn_luhn_ok("4111111111111111", 16));
	EXPECT(c);
}

static void test_phones(void)
{
	static const char *const c[][2] = {
		{"电话13800138000", "电话<PHONE>"},
		/* Luhn-valid with their 86: still phones */
		{"+86 138 1234 5678", "<PHONE>"},
		{"8613912345677", "<PHONE>"},
		{"+86 (0) 138 0013 8000", "<PHONE>"},
		{"call 138 0013 8000", "call <PHONE>"},
		{"call 138-0013-8000 now", "call <PHONE> now"},
		{"138.0013.8000", "<PHONE>"},
		{"138,0013,8000", "<PHONE>"},
		{"138/0013/8000", "<PHONE>"},
		{"138_0013_8000", "<PHONE>"},
		{"138ー0013ー8000", "<PHONE>"}, /* the katakana long-vowel mark as a dash */
		{"&#49;&#51;&#56;&#48;&#48;&#49;&#51;&#56;&#48;&#48;&#48;", "<PHONE>"}, /* HTML */
		{"%31%33%38%30%30%31%33%38%30%30%30", "<PHONE>"},
		{"(138)0013-8000", "<PHONE>"},
		{"138  0013  8000", "<PHONE>"},
		{"１３８００１３８０００", "<PHONE>"},
		{"138\xc2\xa0"
		 "0013\xc2\xa0"
		 "8000",
		 "<PHONE>"}, /* NBSP */
		{"138\xe3\x80\x80"
		 "0013\xe3\x80\x80"
		 "8000",
		 "<PHONE>"}, /* U+3000 */
		{"138\xe2\x80\x8b"
		 "0013\xe2\x80\x8b"
		 "8000",
		 "<PHONE>"}, /* zero-width */
		{"1 3 8 0 0 1 3 8 0 0 0", "<PHONE>"},
		{"+86 138 0013 8000", "<PHONE>"},
		{"+86 (138) 0013 8000", "<PHONE>"},
		{"+8613800138000", "<PHONE>"},
		{"008613800138000", "<PHONE>"},
		{"+44 20 7946 0958", "<PHONE>"},
		{"QQ123456789", "qq<NUM>"}, /* glued to letters: still caught */
		{"一三八零零一三八零零零", "<NUM>"},
		{"壹參捌零零壹參捌零零零", "<NUM>"}, /* 參 folds to 参 */
		{"幺三八洞洞幺三八洞洞洞", "<NUM>"}, /* spoken zero */
		{"幺二三四五六拐八勾洞", "<NUM>"},   /* radio-style 7 and 9 */
		{"(010) 6552-9988", "<NUM>"},
		/* Letters written for digits (O for 0; l, I and | for 1). */
		/* A number beside a device id that starts with digits: two. */
		{"hn4698456 1C-53-35-D0-F0-EB", "hn<NUM> <ID>"},
		{"4698456 00:1a:2b:3c:4d:5e", "<NUM> <ID>"},
		{"110105198012048220 11O1O5198O12O4822O", "<CN_ID> <CN_ID>"},
		{"一三七五四四六八六八一 0xbfe6dbe3f2ea", "<NUM> <ID>"},
		{"4750-0790-5478-8508 475O O79O 5478 85O8", "<CARD> <CARD>"},
		{"l38OO138OOO", "<PHONE>"},
		{"手机(138OO138OOO)", "手机<PHONE>"},
		{"（11O1O519870226O253）", "<CN_ID>"},
		{"(456393377I765073)", "<CARD>"},
		{"手机+86l38OO138OOO", "手机<PHONE>"},
		{"0086l38OO138OOO", "<PHONE>"},
		{"l38.OO13.8OOO", "<PHONE>"},
		{"l38_OO13_8OOO", "<PHONE>"},
		{"l38  OO13  8OOO", "<PHONE>"},
		{"11O1O5 19870226 OOOX", "<CN_ID>"},
		{"(l38)OO13-8OOO", "<PHONE>"},
		{"13812345678 lol", "<PHONE> lol"},
		{"手机 l38-OO13-8OOO 联系", "手机 <PHONE> 联系"},
		{"call me at l39l234 5678", "call me at <PHONE>"},
		{"１３８ＯＯ１３８ＯＯＯ", "<PHONE>"},
		{"4lll 1111 1111 1111", "<CARD>"},
		{"lol 13812345678", "lol <PHONE>"}, /* a word, then the number */
		{"oil 2024", "oil 2024"},
		{"lool iOl", "lool iol"},	/* words of those letters: no digit */
		{"l3800138OOlO", "l<NUM>oolo"}, /* 12 characters: no such number */
		/* Near misses. */
		{"12800138000", "<NUM>"}, /* not a mobile, but a long number */
		{"room 1380", "room 1380"},
		{"iphone 15 16 17", "iphone 15 16 17"},
	};
	EXPECT(c);
}

static void test_numbers_and_dates(void)
{
	static const char *const c[][2] = {
		{"order 12345678901234567890123456789012345 x", "order <NUM> x"},
		{"ticket 9876543", "ticket <NUM>"},
		{"航班 20261129 北京", "航班 20261129 北京"}, /* a date, not personal */
		{"20261399", "<NUM>"},			      /* not a date */
		{"2026-11-29 天气", "2026-11-29 天气"},
		{"2026-11-29 12:30 航班", "2026-11-29 12:30 航班"},
		{"2026.11.29", "2026.11.29"},
		{"iphone 16 价格", "iphone 16 价格"},
		{"h264 mp4", "h264 mp4"},
		{"ＴＥＬ：９８７６５４３２１", "tel:<NUM>"},
	};
	EXPECT(c);
}

/* Whatever the spelling, no run of 7 or more digits survives, and the
 * output is valid UTF-8. */
static void test_no_long_digit_runs(void)
{
	static const char *const in[] = {
		"a1234567b",
		"١٢٣٤٥٦٧٨",
		"1-2-3-4-5-6-7",
		"1 2 3 4 5 6 7 8",
		"(1)(2)(3)(4)(5)(6)(7)",
		"x+1234567",
		"abc\xff\xfe 12345678901",
		/* digits glued to a replaced identifier (found by fuzz_text) */
		"00000000-0000-0000-0000-00000000138000000138000000",
		"id 5f2a9c81-d07b-4e1a-9c3e-1a2b3c4d5e6f13812345678 x",
		/* control characters are separators, as spaces */
		"call 138\x01"
		"1234\x01"
		"5678",
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		const char *o = scrub(in[i]);
		int run = 0, max = 0;
		for (const char *p = o; *p; p++) {
			run = *p >= '0' && *p <= '9' ? run + 1 : 0;
			max = run > max ? run : max;
		}
		KT_CHECK(max < 7);
		if (max >= 7)
			fprintf(stderr, "  '%s' -> '%s'\n", in[i], o);
	}
}

/* Any separator, any number of them, any script's digits: what comes out
 * holds fewer than 7 digits in all (the inputs hold nothing else). */
static void test_any_separator_any_digits(void)
{
	static const char *const in[] = {
		"138\t0013\t8000",
		"138\n0013\n8000",
		"138:0013:8000",
		"138|0013|8000",
		"138;0013;8000",
		"138\xc2\xb7"
		"0013\xc2\xb7"
		"8000", /* middle dot */
		"138\xe2\x80\x94"
		"0013\xe2\x80\x94"
		"8000", /* em dash */
		"138\xe3\x80\x81"
		"0013\xe3\x80\x81"
		"8000", /* ideographic comma */
		"138\xe3\x80\x82"
		"0013\xe3\x80\x82"
		"8000", /* ideographic full stop */
		"192\xe3\x80\x82"
		"168\xe3\x80\x82"
		"1\xe3\x80\x82"
		"1",
		"4111|1111|1111|1111",
		"110105\xc2\xb7"
		"19870703\xc2\xb7"
		"0312",
		"138\x7f"
		"0013\x7f"
		"8000",
		"138    0013    8000",
		"138 -- 0013 -- 8000",
		"\xf0\x90\x92\xa1\xf0\x90\x92\xa3\xf0\x90\x92\xa8\xf0\x90\x92\xa0\xf0\x90\x92\xa0"
		"\xf0\x90\x92\xa1\xf0\x90\x92\xa3\xf0\x90\x92\xa8\xf0\x90\x92\xa0\xf0\x90\x92\xa0"
		"\xf0\x90\x92\xa0", /* Osmanya 13800138000 */
		"\xe3\x80\xa1\xe3\x80\xa3\xe3\x80\xa8\xe3\x80\x87\xe3\x80\x87\xe3\x80\xa1\xe3\x80"
		"\xa3"
		"\xe3\x80\xa8\xe3\x80\x87\xe3\x80\x87\xe3\x80\x87", /* Hangzhou numerals */
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		const char *o = scrub(in[i]);
		int digits = 0;
		for (const char *p = o; *p; p++)
			digits += *p >= '0' && *p <= '9';
		KT_CHECK(digits < 7);
		if (digits >= 7)
			fprintf(stderr, "  case %zu -> '%s'\n", i, o);
	}
}

/* s[0..n) is complete UTF-8 sequences only. */
static bool utf8_whole(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
		if (!k || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if (((unsigned char)s[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static void test_counts_and_truncation(void)
{
	struct kn_scrub_counts c;
	char out[KN_SCRUB_MAX], big[3000];
	const char *q = "a@b.com 13800138000 4111111111111111";

	kn_scrub_query(q, strlen(q), out, &c);
	KT_CHECK(c.email == 1 && c.phone == 1 && c.card == 1 && c.num == 0);
	/* A query longer than the output is cut at a character boundary. */
	for (size_t i = 0; i + 3 <= sizeof(big) - 1; i += 3)
		memcpy(big + i, "名", 3);
	big[2997] = '\0';
	size_t n = kn_scrub_query(big, strlen(big), out, NULL);
	KT_CHECK(n < KN_SCRUB_MAX && n % 3 == 0 && strlen(out) == n);
	/* Whatever falls on the cut (a 2-, 3- or 4-byte character, a
	 * placeholder), the output is whole characters: no lone lead byte. */
	static const char *tail[] = {"é", "中", "😀", " 13800138000"};
	for (size_t t = 0; t < sizeof(tail) / sizeof(tail[0]); t++)
		for (size_t pre = KN_SCRUB_MAX - 12; pre < KN_SCRUB_MAX + 2; pre++) {
			memset(big, 'a', pre);
			strcpy(big + pre, tail[t]);
			n = kn_scrub_query(big, strlen(big), out, NULL);
			KT_CHECK(n < KN_SCRUB_MAX && utf8_whole(out, n));
			KT_CHECK(!strstr(out, "<PH") || strstr(out, "<PHONE>"));
		}
	/* A user's name longer than the 64 bytes a path segment is read for
	 * ends on a character's boundary too: wherever the 64th byte falls. */
	for (size_t pad = 0; pad < 3; pad++) {
		size_t k = (size_t)snprintf(big, sizeof(big), "/home/%.*s", (int)pad, "ab");
		for (int r = 0; r < 30; r++, k += 3)
			memcpy(big + k, "张", 3);
		n = kn_scrub_query(big, k, out, NULL);
		KT_CHECK(utf8_whole(out, n) && !strncmp(out, "/home/<ID>", 10));
	}
}

int main(void)
{
	char err[256];

	if (kn_fold_init(err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	KT_RUN(test_emails);
	KT_RUN(test_urls);
	KT_RUN(test_ip);
	KT_RUN(test_device_ids);
	KT_RUN(test_labeled);
	KT_RUN(test_review_spellings);
	KT_RUN(test_cn_id);
	KT_RUN(test_cards);
	KT_RUN(test_phones);
	KT_RUN(test_numbers_and_dates);
	KT_RUN(test_no_long_digit_runs);
	KT_RUN(test_any_separator_any_digits);
	KT_RUN(test_counts_and_truncation);
	return kt_done();
}
