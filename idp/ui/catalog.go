package ui

// catalog holds every text of the pages, by language code (see languages)
// and key. Keys are dotted: page.part. A page of issue 15 adds its keys
// here, in both languages; TestCatalogComplete checks that each language
// has the same keys and that every key a template names exists.
var catalog = map[string]map[string]string{
	"en": {
		"brand": "Keyward",

		"reset.title":            "Choose a new password",
		"reset.intro":            "Enter a new password for your account. You will sign in with it from now on.",
		"reset.new_password":     "New password",
		"reset.confirm_password": "New password, again",
		"reset.hint":             "At least %d characters. A long phrase is easy to remember; do not reuse a password from another site.",
		"reset.submit":           "Change my password",
		"reset.error.empty":      "Enter a new password.",
		"reset.error.mismatch":   "The two passwords do not match. Type the same password in both fields.",
		"reset.done.title":       "Your password was changed",
		"reset.done.body":        "You can now sign in with your new password. For your safety, you were signed out everywhere else.",

		"verify.title":      "Confirm your e-mail address",
		"verify.intro":      "Press the button to confirm that this e-mail address belongs to you.",
		"verify.submit":     "Confirm my address",
		"verify.done.title": "Address verified",
		"verify.done.body":  "Thank you: your e-mail address is confirmed. You can close this page.",

		"link.invalid.title":  "This link has expired or was already used",
		"link.invalid.reset":  "A link to reset a password works once, and only for a short time.",
		"link.invalid.verify": "A link to confirm an address works once, and only for a short time. Ask for a new confirmation e-mail from your account, or ask your administrator.",
		"link.request_new":    "Request a new link from the sign-in page of your application.",

		"error.csrf.title":        "This form has expired",
		"error.csrf.body":         "For your safety, the form was not accepted and nothing was changed. Go back, reload the page and try again.",
		"error.bad_request.title": "The form could not be read",
		"error.bad_request.body":  "Nothing was changed. Go back, reload the page and try again.",
		"error.too_many.title":    "Too many attempts",
		"error.too_many.body":     "Nothing was changed. Wait a few minutes, then try again.",
		"error.unavailable.title": "The service is busy",
		"error.unavailable.body":  "Nothing was changed. Try again in a few minutes.",
		"error.generic.title":     "Something went wrong",
		"error.generic.body":      "The request could not be completed. Try again later.",

		"password.rule.too_short":         "This password is too short: use at least %d characters.",
		"password.rule.too_long":          "This password is too long. Choose a shorter one.",
		"password.rule.control_character": "This password contains a character that is not allowed, such as a tab or a line break.",
		"password.rule.invalid_utf8":      "This password contains characters that cannot be read.",
		"password.rule.contains_username": "The password must not contain your username.",
		"password.rule.contains_email":    "The password must not contain your e-mail address.",
		"password.rule.blocklisted":       "This password is too common or too easy to guess. Choose another one.",
		"password.rule.same_as_current":   "This is your current password. Choose a different one.",
		"password.rule.other":             "This password is not allowed. Choose another one.",
	},
	"zh-CN": {
		"brand": "Keyward",

		"reset.title":            "设置新密码",
		"reset.intro":            "请为您的账户输入新密码。此后请使用新密码登录。",
		"reset.new_password":     "新密码",
		"reset.confirm_password": "再次输入新密码",
		"reset.hint":             "至少 %d 个字符。较长的短语容易记住；请勿重复使用其他网站的密码。",
		"reset.submit":           "修改密码",
		"reset.error.empty":      "请输入新密码。",
		"reset.error.mismatch":   "两次输入的密码不一致。请在两个输入框中输入相同的密码。",
		"reset.done.title":       "您的密码已修改",
		"reset.done.body":        "现在可以使用新密码登录。为了您的安全，您在其他地方的登录均已退出。",

		"verify.title":      "确认您的电子邮件地址",
		"verify.intro":      "请点击下面的按钮，确认此电子邮件地址属于您。",
		"verify.submit":     "确认我的地址",
		"verify.done.title": "地址已确认",
		"verify.done.body":  "谢谢！您的电子邮件地址已确认。现在可以关闭此页面。",

		"link.invalid.title":  "此链接已过期或已被使用",
		"link.invalid.reset":  "重置密码的链接只能使用一次，且仅在短时间内有效。",
		"link.invalid.verify": "确认地址的链接只能使用一次，且仅在短时间内有效。请在您的账户中重新申请确认邮件，或联系管理员。",
		"link.request_new":    "请在您所用应用的登录页面重新申请链接。",

		"error.csrf.title":        "此表单已失效",
		"error.csrf.body":         "为了您的安全，此表单未被接受，未做任何更改。请返回，刷新页面后重试。",
		"error.bad_request.title": "无法读取此表单",
		"error.bad_request.body":  "未做任何更改。请返回，刷新页面后重试。",
		"error.too_many.title":    "尝试次数过多",
		"error.too_many.body":     "未做任何更改。请等待几分钟后再试。",
		"error.unavailable.title": "服务繁忙",
		"error.unavailable.body":  "未做任何更改。请过几分钟再试。",
		"error.generic.title":     "出错了",
		"error.generic.body":      "请求未能完成。请稍后再试。",

		"password.rule.too_short":         "密码太短：请至少使用 %d 个字符。",
		"password.rule.too_long":          "密码太长，请换一个较短的密码。",
		"password.rule.control_character": "密码包含不允许的字符，例如制表符或换行符。",
		"password.rule.invalid_utf8":      "密码包含无法识别的字符。",
		"password.rule.contains_username": "密码不能包含您的用户名。",
		"password.rule.contains_email":    "密码不能包含您的电子邮件地址。",
		"password.rule.blocklisted":       "此密码太常见或太容易被猜到，请换一个。",
		"password.rule.same_as_current":   "这是您当前的密码，请换一个不同的密码。",
		"password.rule.other":             "此密码不被允许，请换一个。",
	},
}
