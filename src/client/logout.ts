// The provider's "Sign out?" page, reached from the account page's own Sign out button: that
// button was the person's choice already (a POST with the page's form token), so the page
// loads this script and the confirmation submits itself. Reached any other way (an app's
// logout), the page has no script and waits for the person.
const form = document.getElementById('op.logoutForm') as HTMLFormElement | null;
const signOut = document.querySelector<HTMLButtonElement>('button[name="logout"][value="yes"]');
if (form && signOut) form.requestSubmit(signOut);
